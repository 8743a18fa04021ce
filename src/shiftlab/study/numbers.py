"""The numbers of a study's results dict, read one way for every report, and how they print.

A study trains each branch from one shared SFT init with several training seeds and evaluates every
model on the same episodes. This module reads that dict (models, seeds, checkpoints, per-episode outcomes),
summarises a model over its seeds with an interval, and formats values so that tables and findings print
them alike: a rate as `42.2% [30.9, 54.4]` (its 95% Wilson interval), any other metric as mean ± SE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shiftlab.statistics import wilson_interval

BRANCH_LABELS = {"sft": "SFT", "rl": "RL"}
Point = dict[str, Any]


# ----------------------------------------------------------------------------------------------- reading


def eval_tasks(results: dict[str, Any]) -> list[str]:
    tasks = results.get("eval_tasks") or list((results.get("init") or {}).get("eval", {}))
    if not tasks and results.get("task"):
        tasks = [results["task"]]
    return list(tasks)


def shift(results: dict[str, Any], task: str) -> str:
    default = "id" if eval_tasks(results)[:1] == [task] else "ood"
    return str((results.get("shifts") or {}).get(task, default))


def task_label(results: dict[str, Any], task: str) -> str:
    kind = shift(results, task)
    return f"{task} (ID)" if kind == "id" else f"{task} (OOD, {kind} shift)"


def ood_tasks(results: dict[str, Any]) -> list[str]:
    return [t for t in eval_tasks(results) if shift(results, t) != "id"]


def metric(results: dict[str, Any]) -> str:
    return str(results.get("metric") or "success_rate")


def branch_label(name: str) -> str:
    return BRANCH_LABELS.get(name, name)


def _seed_order(seed: str) -> tuple[int, Any]:
    return (0, int(seed)) if seed.lstrip("-").isdigit() else (1, seed)


def branches(results: dict[str, Any]) -> dict[str, dict[str, list[Point]]]:
    """Branch -> seed -> points in step order. A branch given as one list (a single-seed run of the
    older schema) reads as one seed, "0"."""
    out: dict[str, dict[str, list[Point]]] = {}
    for name, runs in (results.get("branches") or {}).items():
        by_seed = runs if isinstance(runs, dict) else {"0": runs or []}
        out[name] = {str(seed): sorted(points or [], key=lambda p: int(p.get("step", 0)))
                     for seed, points in sorted(by_seed.items(), key=lambda kv: _seed_order(str(kv[0])))}
    return out


def last_points(runs: dict[str, list[Point]]) -> dict[str, Point]:
    return {seed: points[-1] for seed, points in runs.items() if points}


def checkpoints(runs: dict[str, list[Point]]) -> list[tuple[int, dict[str, Point]]]:
    """Each step any seed evaluated at, with the seeds' points there."""
    steps = sorted({int(p.get("step", 0)) for points in runs.values() for p in points})
    return [(step, {seed: p for seed, points in runs.items() for p in points if int(p.get("step", 0)) == step})
            for step in steps]


def metrics_of(holder: Point | None, task: str) -> dict[str, Any] | None:
    found = ((holder or {}).get("eval") or {}).get(task)
    return found if isinstance(found, dict) else None


def mean_flops(points: Sequence[Point]) -> float | None:
    flops = [float(p["flops"]) for p in points if isinstance(p.get("flops"), (int, float))]
    return sum(flops) / len(flops) if flops else None


def all_metrics(results: dict[str, Any]) -> list[dict[str, Any]]:
    holders = [results.get("base"), results.get("init")]
    holders += [p for runs in branches(results).values() for points in runs.values() for p in points]
    return [m for h in holders for m in ((h or {}).get("eval") or {}).values() if isinstance(m, dict)]


def is_rate(name: str) -> bool:
    return name.endswith(("_rate", "accuracy"))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def outcomes(metrics: dict[str, Any] | None, name: str) -> list[float] | None:
    """The per-episode values behind a metric (`episode_success` for success_rate, `episode_<metric>`
    otherwise), or None when the results do not hold them or they do not match the episode count."""
    values = (metrics or {}).get("episode_success" if name == "success_rate" else f"episode_{name}")
    if not isinstance(values, list) or not values or not all(map(_number, values)):
        return None
    episodes = (metrics or {}).get("episodes")
    if _number(episodes) and len(values) != episodes:
        return None
    return [float(v) for v in values]


@dataclass(frozen=True)
class Estimate:
    """One metric value with its standard error; `se_source` is "given", "binomial" or "none"."""

    value: float
    se: float | None
    se_source: str


def _stderr_keys(name: str) -> list[str]:
    keys = [f"{name}_stderr", f"{name}_se"]
    stem = name.rsplit("_", 1)[0]
    if stem != name:
        keys.append(f"{stem}_stderr")  # success_rate -> success_stderr (the evaluation harness's name)
    return keys


def estimate(metrics: dict[str, Any] | None, name: str) -> Estimate | None:
    """The metric's value and standard error from one evaluation's metrics; None when it is absent.

    A missing standard error of a rate in [0, 1] is the binomial sqrt(p(1-p)/n) with n = episodes."""
    if not metrics or not _number(metrics.get(name)):
        return None
    value = float(metrics[name])
    for key in _stderr_keys(name):
        if _number(metrics.get(key)):
            return Estimate(value, float(metrics[key]), "given")
    episodes = metrics.get("episodes")
    if is_rate(name) and 0.0 <= value <= 1.0 and isinstance(episodes, int) and episodes > 0:
        return Estimate(value, math.sqrt(value * (1.0 - value) / episodes), "binomial")
    return Estimate(value, None, "none")


# ----------------------------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Value:
    """A metric of one model over its runs (one per seed; None where a run lacks it).

    A rate's interval is the Wilson interval of the pooled counts (successes and episodes summed over
    runs); any other metric has the standard error of the mean over runs, from each run's own."""

    mean: float
    runs: tuple[float | None, ...]
    rate: bool
    low: float | None = None
    high: float | None = None
    se: float | None = None
    successes: int | None = None
    n: int | None = None


def _successes(metrics: dict[str, Any], name: str, value: float) -> int | None:
    episodes = metrics.get("episodes")
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes <= 0:
        return None
    per_episode = outcomes(metrics, name) if name == "success_rate" else None
    if per_episode is not None and set(per_episode) <= {0.0, 1.0}:
        return int(sum(per_episode))
    return min(episodes, max(0, round(value * episodes)))  # a rate over steps: approximate counts


def value_of(runs: Sequence[dict[str, Any] | None], name: str) -> Value | None:
    """The metric over a model's runs; None when no run has it."""
    found = [(m, float(m[name])) for m in runs if m is not None and _number(m.get(name))]
    if not found:
        return None
    per_run = tuple(float(m[name]) if m is not None and _number(m.get(name)) else None for m in runs)
    mean = sum(v for _, v in found) / len(found)
    if is_rate(name) and all(0.0 <= v <= 1.0 for _, v in found):
        counts = [_successes(m, name, v) for m, v in found]
        if any(c is None for c in counts):
            return Value(mean, per_run, True)
        successes, n = sum(counts), sum(int(m["episodes"]) for m, _ in found)
        low, high = wilson_interval(successes, n)
        return Value(mean, per_run, True, low, high, successes=successes, n=n)
    errors = [estimate(m, name) for m, _ in found]
    se = (math.sqrt(sum(e.se**2 for e in errors)) / len(errors)
          if all(e is not None and e.se is not None for e in errors) else None)
    return Value(mean, per_run, False, se=se)


# -------------------------------------------------------------------------------------------- formatting


def gflops(flops: float | None) -> str:
    if flops is None:
        return "–"
    g = float(flops) / 1e9
    if g >= 1e6:
        return f"{g:.3g}"
    if g >= 100:
        return f"{g:,.0f}"
    if g >= 1:
        return f"{g:.1f}"
    return f"{g:.3g}"


def point_text(value: float, rate: bool) -> str:
    return f"{100 * value:.1f}%" if rate else f"{value:.3f}"


def show(value: Value | None) -> str:
    """`42.2% [30.9, 54.4]` for a rate, `1.300 ± 0.100` otherwise, `–` when absent."""
    if value is None:
        return "–"
    text = point_text(value.mean, value.rate)
    if value.rate:
        return text if value.low is None else f"{text} [{100 * value.low:.1f}, {100 * value.high:.1f}]"
    return text if value.se is None else f"{text} ± {value.se:.3f}"


def per_seed(value: Value | None) -> str:
    """The runs' values, `50.0 / 54.7 / 51.6` (rates in percent)."""
    if value is None:
        return "–"
    return " / ".join("–" if v is None else (f"{100 * v:.1f}" if value.rate else f"{v:.3f}") for v in value.runs)


def delta_text(diff: float, low: float | None, high: float | None, rate: bool) -> str:
    """`+6.3 pp [95% CI +1.0, +11.5]` for a rate difference, `+0.123 [95% CI ...]` otherwise."""
    def one(x: float) -> str:
        x = round(x, 9) + 0.0  # no "-0.0" for a difference that is zero up to rounding
        return f"{100 * x:+.1f}" if rate else f"{x:+.3f}"

    text = f"{one(diff)} pp" if rate else one(diff)
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return text
    return f"{text} [95% CI {one(low)}, {one(high)}]"


def p_text(p: float) -> str:
    """Two significant figures: 0.021, 0.25, 1, 0.00012."""
    return f"{p:.2g}"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
