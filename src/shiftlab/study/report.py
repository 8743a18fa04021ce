"""The study report: what a researcher shows after an SFT-vs-RL study, and several studies side by side.

A study (as in *SFT Memorizes, RL Generalizes*) trains one SFT init on the in-distribution task, then two
branches from it at matched compute, each with several training seeds, and evaluates every checkpoint on
the ID task and its shifted (OOD) variants, on the same episodes. The question is whether a branch gained
or lost on each task and whether RL or continued SFT ends higher out of distribution; the answer is only
worth something with its uncertainty. This module writes the report (Markdown, HTML with embedded plots,
one plot per branch, results.json and a tidy results.csv), whose findings (findings.py) quote paired
tests, so the text cannot say more than the data; and a suite report over several studies.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from shiftlab.study.findings import comparisons, suite_summary_lines, summary_lines
from shiftlab.study.numbers import (
    all_metrics,
    branch_label,
    branches,
    checkpoints,
    delta_text,
    duration,
    eval_tasks,
    gflops,
    last_points,
    mean_flops,
    metric,
    metrics_of,
    p_text,
    per_seed,
    shift,
    show,
    task_label,
    value_of,
)
from shiftlab.study.plots import write_branch_plot
from shiftlab.study.render import html_page, markdown

CSV_COLUMNS = ("branch", "seed", "step", "flops", "task", "metric", "value", "n")

__all__ = ["CSV_COLUMNS", "summary_lines", "suite_summary_lines", "write_report", "write_suite_report"]


# --------------------------------------------------------------------------------------------------- csv


def csv_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scalar value of every evaluation (lists and nested dicts left out): base and init with
    no seed and step 0, then each branch's seeds and checkpoints."""
    rows: list[dict[str, Any]] = []

    def add(branch: str, seed: str, step: Any, holder: dict[str, Any]) -> None:
        flops = holder.get("flops")
        for task, metrics in (holder.get("eval") or {}).items():
            if not isinstance(metrics, dict):
                continue
            n = metrics.get("episodes", "")
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    rows.append({"branch": branch, "seed": seed, "step": step, "task": task, "metric": key,
                                 "flops": "" if flops is None else flops, "value": int(value)
                                 if isinstance(value, bool) else value, "n": n})

    if "base" in results:
        add("base", "", 0, results.get("base") or {})
    add("init", "", 0, results.get("init") or {})
    for name, runs in branches(results).items():
        for seed, points in runs.items():
            for p in points:
                add(name, seed, p.get("step", ""), p)
    return rows


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------- document


def _kv_rows(mapping: Any) -> list[list[str]]:
    if not isinstance(mapping, dict):
        return [["value", json.dumps(mapping, default=str)]] if mapping is not None else []
    return [[str(k), v if isinstance(v, str) else json.dumps(v, default=str)] for k, v in mapping.items()]


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _training_seeds(results: dict[str, Any]) -> list[str]:
    given = results.get("training_seeds")
    if isinstance(given, list) and given:
        return [str(s) for s in given]
    return list(dict.fromkeys(seed for runs in branches(results).values() for seed in runs))


def _intro(results: dict[str, Any]) -> str:
    tasks = eval_tasks(results)
    runs = branches(results)
    init = results.get("init") or {}
    flops = [float(p["flops"]) for seeds in runs.values() for points in seeds.values() for p in points
             if isinstance(p.get("flops"), (int, float))]
    ood = ", ".join(f"{t} ({shift(results, t)} shift)" for t in tasks if shift(results, t) != "id")
    episodes = sorted({m["episodes"] for m in all_metrics(results) if isinstance(m.get("episodes"), int)})
    seeds = _training_seeds(results)
    described = ", ".join(
        f"{'continued SFT' if n == 'sft' else branch_label(n)} "
        f"({max((len(p) for p in s.values()), default=0)} checkpoints per seed)" for n, s in runs.items())
    text = (f"Starting from the model {results.get('model', '?')}, one SFT initialisation was trained on the "
            f"in-distribution task {results.get('task') or (tasks[0] if tasks else '?')} "
            f"({gflops(init.get('flops'))} GFLOPs); from it, each branch was trained with "
            f"{len(seeds)} training seed{'s' * (len(seeds) != 1)} ({', '.join(seeds) or '–'}): "
            f"{described or 'none'}, over {gflops(init.get('flops'))}–{gflops(max(flops) if flops else None)} "
            "GFLOPs of training compute (counted from the start, the SFT init's included). Every checkpoint was "
            "evaluated on the ID task" + (f" and on the OOD tasks {ood}" if ood else " only"))
    if episodes:
        count = str(episodes[0]) if len(episodes) == 1 else f"{episodes[0]}–{episodes[-1]}"
        text += f", with {count} episodes per evaluation, the same episodes for every model"
    text += (f". Headline metric: {metric(results)}. A rate is shown with its 95% Wilson interval in brackets "
             "(for a branch: the mean over seeds, and the interval of the seeds' pooled episodes); any other "
             "metric as mean ± one standard error.")
    if results.get("env"):
        options = ", ".join(f"{k}={v}" for k, v in results["env"].items())
        text += f" Every task ran with these environment options over its preset's: {options}."
    if "base" in results:
        text += " The untrained base model was evaluated too."
    return text


def _final_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    name, tasks = metric(results), eval_tasks(results)
    header = ["model", *(task_label(results, t) for t in tasks), "compute (GFLOPs)"]
    rows = []
    if "base" in results:
        base = results.get("base") or {}
        rows.append(["base", *(show(value_of([metrics_of(base, t)], name)) for t in tasks), gflops(base.get("flops"))])
    init = results.get("init") or {}
    rows.append(["SFT init", *(show(value_of([metrics_of(init, t)], name)) for t in tasks), gflops(init.get("flops"))])
    for branch, runs in branches(results).items():
        lasts = list(last_points(runs).values())
        if lasts:
            label = f"{branch_label(branch)} (last, mean of {len(lasts)} seed{'s' * (len(lasts) != 1)})"
            rows.append([label, *(show(value_of([metrics_of(p, t) for p in lasts], name)) for t in tasks),
                         gflops(mean_flops(lasts))])
    return header, rows


def _checkpoint_blocks(results: dict[str, Any]) -> list[tuple]:
    name, tasks = metric(results), eval_tasks(results)
    init = results.get("init") or {}
    blocks: list[tuple] = [("h2", "Checkpoints")]
    for branch, runs in branches(results).items():
        seeds = list(runs)
        header = ["step", "GFLOPs (mean)", *(f"{task_label(results, t)}: mean [95% CI] (seeds {' / '.join(seeds)})"
                                             for t in tasks)]
        rows = [["SFT init", gflops(init.get("flops")),
                 *(show(value_of([metrics_of(init, t)], name)) for t in tasks)]]
        for step, by_seed in checkpoints(runs):
            cells = []
            for t in tasks:
                value = value_of([metrics_of(by_seed.get(s), t) for s in seeds], name)
                cells.append(f"{show(value)} ({per_seed(value)})" if value is not None else "–")
            rows.append([str(step), gflops(mean_flops(list(by_seed.values()))), *cells])
        who = "continued SFT" if branch == "sft" else branch_label(branch)
        blocks += [("h3", f"Branch: {who}"), ("table", header, rows)]
    return blocks


def _pretraining_blocks(results: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = []
    seen = results.get("pretraining")
    if isinstance(seen, dict):
        reused = {True: "the cache was reused from an earlier run.", False: "it was built for this study."}
        where = (f"The base model was pretrained on the mixture with hash {seen.get('hash', '?')}, cached at "
                 f"{seen.get('cache', '?')}; {reused.get(seen.get('reused'), 'whether it was reused is not recorded.')}")
        blocks += [("h2", "What the base saw"), ("p", where)]
        sources = [s for s in seen.get("sources") or [] if isinstance(s, dict)]
        if sources:
            rows = [[str(s.get("task", "?")), ", ".join(f"{k}={v}" for k, v in (s.get("env") or {}).items()) or "–",
                     str(s.get("episodes", "–")), str(s.get("revisions", "–"))] for s in sources]
            blocks.append(("table", ["task", "environment options", "episodes", "revisions"], rows))
        if seen.get("support") is not None:
            blocks.append(("p", f"Support rows (short facts the tasks build on): {seen['support']}."))
        held_out = [str(line) for line in seen.get("held_out") or []]
        if held_out:
            blocks += [("p", "Held out: evaluation combinations the base never saw:"), ("ul", held_out)]
    leakage = results.get("leakage")
    if isinstance(leakage, dict) and leakage:
        if not blocks:
            blocks.append(("h2", "Evaluation episodes in training data"))
        lines = [f"{task}: {check.get('found_in_training', '?')} of {check.get('episodes', '?')} evaluation episodes "
                 "occur in any training data" for task, check in leakage.items() if isinstance(check, dict)]
        blocks += [("p", "Every evaluation episode was checked against all training data "
                         "(pretraining, the SFT init, continued SFT, RL):"), ("ul", lines)]
    return blocks


def _timing_table(timing: Any) -> list[list[str]]:
    if not isinstance(timing, dict) or not timing:
        return []
    numeric = {k: float(v) for k, v in timing.items() if isinstance(v, (int, float))}
    rows = [[str(k), f"{numeric[k]:.1f}", duration(numeric[k])] if k in numeric else [str(k), str(v), "–"]
            for k, v in timing.items()]
    rows.append(["total", f"{sum(numeric.values()):.1f}", duration(sum(numeric.values()))])
    return rows


def _config_text(config: Any) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip()


def _findings_blocks(lines: list[str]) -> list[tuple]:
    findings = [line for line in lines if not line.startswith(("Note:", "Caution:"))]
    blocks: list[tuple] = [("ul", findings) if findings else ("p", "No findings: the results hold no numbers to compare.")]
    return blocks + [("p", line) for line in lines if line.startswith(("Note:", "Caution:"))]


def _blocks(results: dict[str, Any], plots: list[tuple[str, Path]]) -> list[tuple]:
    tasks = eval_tasks(results)
    blocks: list[tuple] = [
        ("h1", f"Study report: {results.get('preset', '?')} — {results.get('task') or (tasks[0] if tasks else '?')}"),
        ("p", _intro(results)),
        ("h2", "What the numbers show"),
        *_findings_blocks(summary_lines(results)),
    ]
    header, rows = _final_table(results)
    blocks += [("h2", f"Final results ({metric(results)})"), ("table", header, rows)]
    blocks.append(("h2", "Plots"))
    blocks += [("img", alt, f"plots/{path.name}", path) for alt, path in plots]
    blocks += _checkpoint_blocks(results)
    blocks += _pretraining_blocks(results)
    timing = _timing_table(results.get("timing"))
    if timing:
        blocks += [("h2", "Time per stage"), ("table", ["stage", "seconds", "h:mm:ss"], timing)]

    blocks += [("h2", "Reproducibility"), ("h3", "Config"), ("pre", "yaml", _config_text(results.get("config", {})))]
    seeds = _kv_rows(results.get("seed_ranges") or results.get("seeds"))
    if results.get("training_seeds"):
        seeds.insert(0, ["training seeds (one run of each branch per seed)",
                         ", ".join(str(s) for s in results["training_seeds"])])
    for title, kv in (("Seeds", seeds), ("Versions", _kv_rows(results.get("versions"))),
                      ("Machine", _kv_rows(results.get("machine")))):
        if kv:
            blocks += [("h3", title), ("table", ["key", "value"], kv)]
    started, finished = results.get("started"), results.get("finished")
    when = f"Started {started or '–'}, finished {finished or '–'}"
    t0, t1 = _parse_time(started), _parse_time(finished)
    if t0 and t1 and (t0.tzinfo is None) == (t1.tzinfo is None):
        when += f" (wall clock {duration((t1 - t0).total_seconds())})"
    blocks.append(("p", when + ". The raw results are in results.json next to this report, and every value "
                              "one per row in results.csv."))
    return blocks


def _plot_name(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "branch"
    unique, n = stem, 2
    while unique in taken:
        unique, n = f"{stem}-{n}", n + 1
    taken.add(unique)
    return f"{unique}.png"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Write report.md, report.html (self-contained), plots/<branch>.png, results.json and results.csv
    under `out_dir`.

    Returns {"markdown", "html", "json", "csv": paths, "plots": [paths, one per branch]}."""
    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "results.json", out / "results.csv"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=_json_default) + "\n",
                         encoding="utf-8")
    _write_csv(csv_rows(results), csv_path)
    taken: set[str] = set()
    plots: list[tuple[str, Path]] = []
    for branch in branches(results):
        path = plot_dir / _plot_name(branch, taken)
        write_branch_plot(results, branch, path)
        plots.append((f"{branch_label(branch)} branch: {metric(results)} vs training compute", path))
    blocks = _blocks(results, plots)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(markdown(blocks), encoding="utf-8")
    html_path.write_text(html_page(blocks), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, "json": json_path, "csv": csv_path,
            "plots": [p for _, p in plots]}


# ------------------------------------------------------------------------------------------------- suite


def _rl_sft_cell(results: dict[str, Any], task: str) -> str:
    found = [c for kind, c in comparisons(results) if kind == "rl-sft" and c.task == task]
    if not found or found[0].diff is None:
        return "–"
    c = found[0]
    rate = c.value_a.rate
    if c.paired is None:
        return f"{delta_text(c.diff, None, None, rate)} (unpaired)"
    return f"{delta_text(c.paired.diff, c.paired.ci_low, c.paired.ci_high, rate)}, p = {p_text(c.paired.p)}"


def _suite_table(studies: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["study (ID task)", "evaluated on", "SFT init", "SFT (last)", "RL (last)", "RL − SFT (paired test)"]
    rows = []
    for results in studies:
        name, runs = metric(results), branches(results)
        lasts = {b: list(last_points(runs.get(b) or {}).values()) for b in ("sft", "rl")}
        for task in eval_tasks(results):
            rows.append([str(results.get("task", "?")), task_label(results, task),
                         show(value_of([metrics_of(results.get("init"), task)], name)),
                         *(show(value_of([metrics_of(p, task) for p in lasts[b]], name)) for b in ("sft", "rl")),
                         _rl_sft_cell(results, task)])
    return header, rows


def _suite_timing(studies: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    names = [str(r.get("task", i)) for i, r in enumerate(studies)]
    timings = [r.get("timing") if isinstance(r.get("timing"), dict) else {} for r in studies]
    stages = list(dict.fromkeys(stage for t in timings for stage in t))
    rows = [[str(stage), *(duration(float(t[stage])) if isinstance(t.get(stage), (int, float)) else "–"
                           for t in timings)] for stage in stages]
    totals = [duration(sum(float(v) for v in t.values() if isinstance(v, (int, float)))) for t in timings]
    return ["stage", *names], [*rows, ["total", *totals]]


def _suite_blocks(studies: Sequence[dict[str, Any]], title: str) -> list[tuple]:
    metrics = sorted({metric(r) for r in studies})
    blocks: list[tuple] = [
        ("h1", title),
        ("p", f"{len(studies)} SFT-vs-RL studies, one per in-distribution task "
              f"({', '.join(str(r.get('task', '?')) for r in studies)}), headline metric {', '.join(metrics)}. "
              "Each row is one evaluation task of one study, at the last checkpoints, each branch the mean over its "
              "seeds with the 95% Wilson interval of its pooled episodes; the last column is RL minus SFT with "
              "its paired bootstrap 95% CI and the paired permutation test's p."),
    ]
    header, rows = _suite_table(studies)
    blocks += [("h2", "Side by side"), ("table", header, rows)]
    blocks.append(("h2", "Findings per study"))
    every = [summary_lines(results) for results in studies]
    shared: list[str] = []  # notes every study repeats (how the tests work) are shown once, after the studies
    for results, lines in zip(studies, every, strict=True):
        notes = [line for line in lines if line.startswith(("Note:", "Caution:"))
                 and all(line in other for other in every)]
        shared += [line for line in notes if line not in shared]
        blocks += [("h3", f"{results.get('task', '?')} (preset {results.get('preset', '?')})"),
                   *_findings_blocks([line for line in lines if line not in notes])]
    blocks += [("p", line) for line in shared]
    blocks += [("h2", "What the numbers show"), ("p", " ".join(suite_summary_lines(studies)))]
    header, rows = _suite_timing(studies)
    blocks += [("h2", "Time per stage (h:mm:ss)"), ("table", header, rows)]
    links = []
    for results in studies:
        where = results.get("report_dir")
        if where:
            base = Path(str(where)).as_posix()
            links += [(f"{results.get('task', '?')}: report (HTML)", f"{base}/report.html"),
                      (f"{results.get('task', '?')}: report (Markdown)", f"{base}/report.md")]
    blocks.append(("h2", "Each study's report"))
    blocks.append(("links", links) if links else ("p", "No study gave its report directory."))
    blocks.append(("p", "Every value of every study is one row of results.csv next to this report."))
    return blocks


def write_suite_report(studies: Sequence[dict[str, Any]], out_dir: str | Path,
                       title: str = "SFT vs RL across tasks") -> dict[str, Path]:
    """Write report.md, report.html and results.csv (every study's rows) for several studies under `out_dir`.

    Each study is a results dict as write_report takes; an optional "report_dir" (relative to `out_dir`)
    is linked. Returns {"markdown", "html", "csv": paths}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, html_path = out / "results.csv", out / "report.md", out / "report.html"
    _write_csv([row for results in studies for row in csv_rows(results)], csv_path)
    blocks = _suite_blocks(studies, title)
    md_path.write_text(markdown(blocks), encoding="utf-8")
    html_path.write_text(html_page(blocks), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, "csv": csv_path}
