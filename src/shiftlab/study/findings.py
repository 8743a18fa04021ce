"""The study's findings: paired comparisons between its models, put in words that follow the numbers.

For each evaluation task a study asks three questions: did RL move away from the SFT init, did continued
SFT, and which of the two ends higher at matched compute. Every model is scored on the same episodes, so
each answer is a paired test on the per-episode outcomes (statistics.py), and its line quotes the
difference, its interval and p. A difference is called clear only when p < 0.05; otherwise the line says
it is not distinguishable from zero at this sample size. Results without per-episode outcomes (older
runs) get an unpaired comparison of Wilson intervals, and the line says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shiftlab.statistics import PERMUTATIONS, McNemar, Paired, mcnemar_exact, paired_difference
from shiftlab.study.numbers import (
    Value,
    all_metrics,
    branch_label,
    branches,
    delta_text,
    eval_tasks,
    gflops,
    last_points,
    mean_flops,
    metric,
    metrics_of,
    ood_tasks,
    outcomes,
    p_text,
    point_text,
    shift,
    show,
    task_label,
    value_of,
)

SIGNIFICANCE_LEVEL = 0.05  # a paired difference is called clear below this p
UNMATCHED_COMPUTE = 0.10  # last checkpoints whose compute differs by more than this are flagged
NORMAL_95 = 1.959964  # half-width of a normal 95% interval in standard errors


@dataclass(frozen=True)
class Comparison:
    """Model a against model b on one task: their values, and the paired test when the outcomes allow it
    (else `unpaired`, the reason there is none)."""

    task: str
    a: str
    b: str
    value_a: Value | None
    value_b: Value | None
    paired: Paired | None
    mcnemar: tuple[McNemar, ...]
    mcnemar_kind: str
    unpaired: str | None

    @property
    def clear(self) -> bool:
        return self.paired is not None and self.paired.p < SIGNIFICANCE_LEVEL

    @property
    def diff(self) -> float | None:
        if self.paired is not None:
            return self.paired.diff
        if self.value_a is None or self.value_b is None:
            return None
        return self.value_a.mean - self.value_b.mean


@lru_cache(maxsize=256)
def _paired(a: tuple[tuple[float, ...], ...], b: tuple[tuple[float, ...], ...]) -> Paired:
    """paired_difference, once per distinct input: a report and its summary ask the same questions."""
    return paired_difference(a, b, seed=0)


def _binary(runs: Sequence[Sequence[float]]) -> bool:
    return all(set(run) <= {0.0, 1.0} for run in runs)


def compare(results: dict[str, Any], task: str, a: str, a_runs: dict[str, Any], b: str,
            b_runs: dict[str, Any]) -> Comparison:
    """Compare two models (each a seed -> evaluation holder mapping) on `task` by the study's metric."""
    name = metric(results)
    a_metrics = {seed: metrics_of(h, task) for seed, h in a_runs.items()}
    b_metrics = {seed: metrics_of(h, task) for seed, h in b_runs.items()}
    value_a, value_b = value_of(list(a_metrics.values()), name), value_of(list(b_metrics.values()), name)
    a_out = {seed: outcomes(m, name) for seed, m in a_metrics.items()}
    b_out = {seed: outcomes(m, name) for seed, m in b_metrics.items()}
    args: dict[str, Any] = {"task": task, "a": a, "b": b, "value_a": value_a, "value_b": value_b}
    if value_a is None or value_b is None:
        return Comparison(**args, paired=None, mcnemar=(), mcnemar_kind="", unpaired=f"no {name} to compare")
    if any(o is None for o in [*a_out.values(), *b_out.values()]):
        key = "episode_success" if name == "success_rate" else f"episode_{name}"
        return Comparison(**args, paired=None, mcnemar=(), mcnemar_kind="",
                          unpaired=f"per-episode outcomes ({key}) missing for some models")
    lengths = {len(o) for o in [*a_out.values(), *b_out.values()]}
    if len(lengths) > 1:
        return Comparison(**args, paired=None, mcnemar=(), mcnemar_kind="",
                          unpaired="the models were scored on different numbers of episodes")
    xs, ys = [tuple(o) for o in a_out.values()], [tuple(o) for o in b_out.values()]
    mcnemar: tuple[McNemar, ...] = ()
    kind = ""
    if _binary(xs) and _binary(ys):
        if len(ys) == 1:
            mcnemar, kind = tuple(mcnemar_exact(x, ys[0]) for x in xs), "per seed" if len(xs) > 1 else ""
        elif a_out.keys() == b_out.keys():
            mcnemar, kind = tuple(mcnemar_exact(a_out[s], b_out[s]) for s in a_out), "per seed pair"
    return Comparison(**args, paired=_paired(tuple(xs), tuple(ys)), mcnemar=mcnemar, mcnemar_kind=kind,
                      unpaired=None)


def _base(results: dict[str, Any]) -> dict[str, Any]:
    return {"": results.get("base") or {}}


def _init(results: dict[str, Any]) -> dict[str, Any]:
    return {"": results.get("init") or {}}


def comparisons(results: dict[str, Any]) -> list[tuple[str, Comparison]]:
    """(kind, comparison) per task: "rl-init", "sft-init", "rl-sft" (last checkpoints, over seeds), and
    "init-base" on the ID task when the base model was evaluated."""
    runs = branches(results)
    lasts = {name: last_points(seeds) for name, seeds in runs.items()}
    out: list[tuple[str, Comparison]] = []
    for task in eval_tasks(results):
        for name in ("rl", "sft"):
            if lasts.get(name):
                out.append((f"{name}-init", compare(results, task, branch_label(name), lasts[name],
                                                    "SFT init", _init(results))))
        if lasts.get("rl") and lasts.get("sft"):
            out.append(("rl-sft", compare(results, task, "RL", lasts["rl"], "SFT", lasts["sft"])))
    tasks = eval_tasks(results)
    if "base" in results and tasks:
        id_task = next((t for t in tasks if shift(results, t) == "id"), tasks[0])
        out.append(("init-base", compare(results, id_task, "SFT init", _init(results), "base", _base(results))))
    return out


# ------------------------------------------------------------------------------------------------- words


def _seeds_text(paired: Paired, a: str, b: str) -> str:
    if paired.n_seeds_a == paired.n_seeds_b == 1:
        return f"{paired.n_episodes} episodes"
    if paired.n_seeds_b == 1:
        return f"{paired.n_seeds_a} seeds x {paired.n_episodes} episodes"
    if paired.n_seeds_a == paired.n_seeds_b:
        return f"{paired.n_seeds_a} seeds per branch x {paired.n_episodes} episodes"
    return f"{paired.n_seeds_a} {a} and {paired.n_seeds_b} {b} seeds x {paired.n_episodes} episodes"


def _test_text(c: Comparison) -> str:
    paired = c.paired
    assert paired is not None
    text = f"paired permutation test p = {p_text(paired.p)} over {_seeds_text(paired, c.a, c.b)}"
    if c.mcnemar:
        label = f"exact McNemar {c.mcnemar_kind}".rstrip()
        text += f" ({label}: p = {', '.join(p_text(m.p) for m in c.mcnemar)})"
    return text


def _unpaired_verdict(c: Comparison) -> str:
    a, b = c.value_a, c.value_b
    assert a is not None and b is not None
    if a.rate and a.low is not None and b.low is not None:
        apart = a.low > b.high or b.low > a.high
        kind = "95% Wilson intervals"
    elif not a.rate and a.se is not None and b.se is not None:
        apart = abs(a.mean - b.mean) > NORMAL_95 * (a.se + b.se)
        kind = "95% normal intervals (±1.96 SE)"
    else:
        return f"unpaired ({c.unpaired}) and no interval to compare, so not judged"
    if apart:
        higher = c.a if a.mean > b.mean else c.b
        return f"unpaired ({c.unpaired}): the {kind} do not overlap, {higher} higher by this unpaired comparison"
    return (f"unpaired ({c.unpaired}): the {kind} overlap, so this unpaired comparison does not tell "
            "them apart at this sample size (overlap is a weaker criterion than a test)")


def _line(results: dict[str, Any], c: Comparison, verdict: str, where: str = "") -> str:
    head = f"{task_label(results, c.task)}: {c.a}"
    if c.value_a is None or c.value_b is None:
        return f"{head} vs {c.b}{where}: {c.unpaired}."
    rate = c.value_a.rate
    if c.paired is None:
        delta = delta_text(c.value_a.mean - c.value_b.mean, None, None, rate)
        return f"{head} {show(c.value_a)} vs {c.b} {show(c.value_b)}{where}: {delta}, {_unpaired_verdict(c)}."
    p = c.paired
    delta = delta_text(p.diff, p.ci_low, p.ci_high, rate)
    line = (f"{head} {point_text(p.mean_a, rate)} vs {c.b} {point_text(p.mean_b, rate)}{where}: {delta}, "
            f"{_test_text(c)}: {verdict}.")
    excludes_zero = p.ci_low > 0 or p.ci_high < 0
    if excludes_zero != c.clear and p.diff != 0:
        line += (f" The bootstrap interval {'excludes' if excludes_zero else 'includes'} zero while the "
                 f"permutation test {'does not reject' if excludes_zero else 'rejects'} it (the two disagree near "
                 "the threshold, more so when few episodes differ); the verdict follows the test.")
    return line


def _not_distinguishable() -> str:
    return "not distinguishable from zero at this sample size"


def change_line(results: dict[str, Any], c: Comparison) -> str:
    """A branch's last checkpoint against the SFT init."""
    verdict = _not_distinguishable()
    if c.clear:
        verdict = f"a clear {'gain' if c.paired.diff > 0 else 'drop'} (p < {SIGNIFICANCE_LEVEL:g})"
    return _line(results, c, verdict)


def branches_line(results: dict[str, Any]) -> str:
    """The compute of the two last checkpoints, as the RL-vs-SFT lines quote it."""
    lasts = {name: last_points(seeds) for name, seeds in branches(results).items()}
    rl, sft = (mean_flops(list(lasts[n].values())) for n in ("rl", "sft"))
    return f" at the last checkpoints (RL {gflops(rl)}, SFT {gflops(sft)} GFLOPs)"


def _unmatched(results: dict[str, Any]) -> bool:
    lasts = {name: last_points(seeds) for name, seeds in branches(results).items()}
    flops = [mean_flops(list(lasts[n].values())) or 0.0 for n in ("rl", "sft")]
    return min(flops) > 0 and max(flops) / min(flops) - 1 > UNMATCHED_COMPUTE


def rl_sft_line(results: dict[str, Any], c: Comparison) -> str:
    """RL against SFT at their last checkpoints, with a caution when their compute is not matched."""
    verdict = _not_distinguishable()
    if c.clear:
        verdict = f"{'RL' if c.paired.diff > 0 else 'SFT'} is clearly higher (p < {SIGNIFICANCE_LEVEL:g})"
    line = _line(results, c, verdict, branches_line(results))
    if _unmatched(results):
        line += (f" Caution: the two last checkpoints differ in compute by more than {UNMATCHED_COMPUTE:.0%}, "
                 "so this is not matched.")
    return line


def base_line(results: dict[str, Any], c: Comparison) -> str:
    """The SFT init against the base model on the ID task: did the initialisation learn the task?"""
    verdict = "not distinguishable from the base model at this sample size"
    if c.clear and c.paired.diff > 0:
        verdict = "the SFT init is clearly above the base model, so the initialisation learned the ID task"
    elif c.clear:
        verdict = "the SFT init is clearly below the base model; the initialisation made the ID task worse"
    return _line(results, c, verdict)


def _floor_notes(results: dict[str, Any]) -> list[str]:
    name, notes = metric(results), []
    lasts = [p for seeds in branches(results).values() for p in last_points(seeds).values()]
    for task in ood_tasks(results):
        init = value_of([metrics_of(results.get("init"), task)], name)
        if init is None or init.mean != 0:
            continue
        ends = [value_of([metrics_of(p, task)], name) for p in lasts]
        if all(v is not None and v.mean == 0 for v in ends):
            notes.append(f"Note: the SFT init and every branch's last checkpoint score 0 on {task_label(results, task)}: "
                         "at this floor the evaluation cannot show an OOD change in either direction.")
        else:
            notes.append(f"Note: the SFT init scores 0 on {task_label(results, task)}, so a drop from it "
                         "cannot show there; only gains can.")
    return notes


def _notes(results: dict[str, Any], found: list[tuple[str, Comparison]]) -> list[str]:
    name, notes = metric(results), []
    n = len([c for _, c in found if c.paired is not None])
    if n:
        notes.append(f"Note: p is a two-sided paired sign-flip permutation test of the per-episode difference "
                     f"({PERMUTATIONS} random sign flips, or all of them when there are fewer), each "
                     "model first averaged over its seeds (the episode is the unit; the spread between training "
                     "seeds is not modelled on its own); the 95% CI is a paired bootstrap percentile interval; "
                     "McNemar tests are exact binomial tests on the episodes where two single runs disagree. "
                     f"'Clear' means p < {SIGNIFICANCE_LEVEL:g} for that comparison alone, with no correction for "
                     f"the {n} comparisons made here.")
    if any(c.unpaired for _, c in found):
        notes.append("Note: some comparisons are unpaired (the results lack per-episode outcomes); they compare "
                     "the two models' intervals, which is weaker than a paired test on the same episodes.")
    if any(len(seeds) > 1 for seeds in branches(results).values()):
        notes.append("Note: a branch's interval in the tables is the Wilson interval of its seeds' pooled episodes; "
                     "the seeds share the evaluation episodes, so it can be narrower than the uncertainty over new "
                     "episodes. The paired tests here are the comparisons to rely on.")
    if name != "success_rate" and any(isinstance(m.get(name), (int, float)) for m in all_metrics(results)):
        notes.append(f"Note: {name} is not a count of episodes; its Wilson intervals treat it as a rate over "
                     "n = episodes, so they are approximate.")
    for task, check in (results.get("leakage") or {}).items():
        if isinstance(check, dict) and check.get("found_in_training"):
            notes.append(f"Caution: {check['found_in_training']} of {check.get('episodes', '?')} evaluation episodes "
                         f"of {task} occur in the training data, so its scores are partly memorisation.")
    return notes + _floor_notes(results)


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Plain-language findings, each quoting its paired test, then notes ("Note:"/"Caution:" lines).

    Per eval task: RL's last checkpoint vs the SFT init, SFT's last checkpoint vs the SFT init, RL vs
    SFT at their last checkpoints; then the SFT init vs the base model on the ID task when it was evaluated."""
    found = comparisons(results)
    writers = {"rl-init": change_line, "sft-init": change_line, "rl-sft": rl_sft_line, "init-base": base_line}
    return [writers[kind](results, c) for kind, c in found] + _notes(results, found)


# ------------------------------------------------------------------------------------------------- suite


def _ood_sentence(results: dict[str, Any], c: Comparison) -> str:
    where = f"On {c.task} ({shift(results, c.task)} shift, the {results.get('task', '?')} study)"
    if c.value_a is None or c.value_b is None:
        return f"{where}, RL and SFT have no {metric(results)} to compare."
    init = value_of([metrics_of(results.get("init"), c.task)], metric(results))
    start = f" from the SFT init's {point_text(init.mean, init.rate)}" if init is not None else ""
    rate = c.value_a.rate
    numbers = f"RL ends at {point_text(c.value_a.mean, rate)} and SFT at {point_text(c.value_b.mean, rate)}{start}"
    diff = c.diff or 0.0
    if c.paired is None:
        return f"{where}, {numbers}; {_unpaired_verdict(c)}."
    if diff == 0:
        return f"{where}, {numbers}: the two are level (paired test p = {p_text(c.paired.p)})."
    higher = "RL" if diff > 0 else "SFT"
    gap = delta_text(abs(diff), None, None, rate).lstrip("+")
    if c.clear:
        return (f"{where}, {numbers}: {higher} is higher by {gap}, a clear difference by the paired test "
                f"(p = {p_text(c.paired.p)}).")
    return (f"{where}, {numbers}: {higher} is higher by {gap}, but the paired test does not distinguish it "
            f"from zero (p = {p_text(c.paired.p)}).")


def suite_summary_lines(studies: Sequence[dict[str, Any]]) -> list[str]:
    """What several studies show together, computed from their numbers: per OOD task which branch ends
    higher and whether the paired test makes that clear, a tally, and what a floor at 0 hides."""
    lines: list[str] = []
    tally = {"RL": 0, "SFT": 0, "neither": 0}
    init_zero, all_zero, count = True, True, 0
    for results in studies:
        name = metric(results)
        ood = set(ood_tasks(results))
        lasts = [p for seeds in branches(results).values() for p in last_points(seeds).values()]
        for kind, c in comparisons(results):
            if kind != "rl-sft" or c.task not in ood:
                continue
            count += 1
            lines.append(_ood_sentence(results, c))
            tally["neither" if not c.clear else ("RL" if c.paired.diff > 0 else "SFT")] += 1
            init = value_of([metrics_of(results.get("init"), c.task)], name)
            init_zero &= init is not None and init.mean == 0
            all_zero &= init_zero and all((v := value_of([metrics_of(p, c.task)], name)) is not None and v.mean == 0
                                          for p in lasts)
    if not count:
        return ["No study has both branches evaluated on an OOD task, so there is nothing to compare "
                "out of distribution."]
    parts = [f"RL is clearly higher on {tally['RL']}", f"SFT on {tally['SFT']}"]
    if tally["neither"]:
        parts.append(f"neither is clearly higher on the other {tally['neither']}")
    lines.append(f"Across the {count} OOD task{'s' * (count != 1)}, {', '.join(parts[:-1])} and {parts[-1]}.")
    if all_zero:
        lines.append("Every model scores 0 on every OOD task: at this floor the instrument cannot measure OOD "
                     "change at all, so these studies say nothing about generalization.")
    elif init_zero:
        lines.append("The SFT init scores 0 on every OOD task, so these evaluations cannot measure an OOD loss "
                     "from the initialisation; only gains can show.")
    return lines
