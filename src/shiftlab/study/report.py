"""The study report: what a researcher shows after an SFT-vs-RL study.

A study (as in *SFT Memorizes, RL Generalizes*) ends with a pile of numbers: an SFT-initialised model and
two branches trained from it at matched compute, each evaluated at checkpoints on the in-distribution task
and its shifted (OOD) variants. The question is whether a branch gained or lost on each task and whether
RL or continued SFT ends higher out of distribution, and the answer is only worth something with its
uncertainty. This module turns the results dict into a self-contained report (Markdown, HTML with embedded
plots, one plot per evaluation task, the raw results as JSON) and into plain-language findings whose
wording is computed from the numbers and their standard errors, so the text cannot say more than the data.

Both documents are rendered from one list of blocks, so the Markdown and the HTML carry the same content.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter

BRANCH_LABELS = {"sft": "SFT", "rl": "RL"}
BRANCH_STYLES = {"sft": {"color": "#1f77b4", "marker": "s", "linestyle": "--"},  # distinct where lines overlap
                 "rl": {"color": "#d62728", "marker": "o", "linestyle": "-"}}
SIGNIFICANCE = 2.0  # a change counts as clear beyond this many combined standard errors
UNMATCHED_COMPUTE = 0.10  # last checkpoints whose compute differs by more than this are flagged
DPI = 110


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Estimate:
    """One metric value with its standard error; `se_source` is "given", "binomial" or "none"."""

    value: float
    se: float | None
    se_source: str


def _is_rate(metric: str) -> bool:
    return metric.endswith(("_rate", "accuracy"))


def _stderr_keys(metric: str) -> list[str]:
    keys = [f"{metric}_stderr", f"{metric}_se"]
    stem = metric.rsplit("_", 1)[0]
    if stem != metric:
        keys.append(f"{stem}_stderr")  # success_rate -> success_stderr (the evaluation harness's name)
    return keys


def estimate(metrics: dict[str, Any] | None, metric: str) -> Estimate | None:
    """The metric's value and standard error from one evaluation's metrics; None when it is absent.

    A missing standard error of a rate in [0, 1] is the binomial sqrt(p(1-p)/n) with n = episodes."""
    if not metrics or not isinstance(metrics.get(metric), (int, float)) or isinstance(metrics[metric], bool):
        return None
    value = float(metrics[metric])
    for key in _stderr_keys(metric):
        if isinstance(metrics.get(key), (int, float)):
            return Estimate(value, float(metrics[key]), "given")
    episodes = metrics.get("episodes")
    if _is_rate(metric) and 0.0 <= value <= 1.0 and isinstance(episodes, int) and episodes > 0:
        return Estimate(value, math.sqrt(value * (1.0 - value) / episodes), "binomial")
    return Estimate(value, None, "none")


def _eval_tasks(results: dict[str, Any]) -> list[str]:
    tasks = results.get("eval_tasks") or list((results.get("init") or {}).get("eval", {}))
    if not tasks and results.get("task"):
        tasks = [results["task"]]
    return list(tasks)


def _shift(results: dict[str, Any], task: str, index: int) -> str:
    return str((results.get("shifts") or {}).get(task, "id" if index == 0 else "ood"))


def _task_label(results: dict[str, Any], task: str, index: int) -> str:
    shift = _shift(results, task, index)
    return f"{task} (ID)" if shift == "id" else f"{task} (OOD, {shift} shift)"


def _metric(results: dict[str, Any]) -> str:
    return str(results.get("metric") or "success_rate")


def _branches(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    branches = results.get("branches") or {}
    return {name: sorted(points or [], key=lambda p: float(p.get("flops", 0.0))) for name, points in branches.items()}


def _branch_label(name: str) -> str:
    return BRANCH_LABELS.get(name, name)


def _all_evals(results: dict[str, Any]) -> list[dict[str, Any]]:
    evals = [(results.get("base") or {}).get("eval") or {}, (results.get("init") or {}).get("eval") or {}]
    evals += [point.get("eval") or {} for points in _branches(results).values() for point in points]
    return [metrics for ev in evals for metrics in ev.values() if isinstance(metrics, dict)]


# -------------------------------------------------------------------------------------------- formatting


def _gflops(flops: float | None) -> str:
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


def _value(est: Estimate | None, rate: bool) -> str:
    """'42.0% ± 6.2' for a rate (the ± in percentage points), '1.300 ± 0.100' otherwise."""
    if est is None:
        return "–"
    if rate:
        text = f"{100 * est.value:.1f}%"
        return text if est.se is None else f"{text} ± {100 * est.se:.1f}"
    return f"{est.value:.3f}" if est.se is None else f"{est.value:.3f} ± {est.se:.3f}"


def _delta(diff: float, se: float | None, rate: bool) -> str:
    if rate:
        text = f"{100 * diff:+.1f} pp"
        return text if se is None else f"{text} ± {100 * se:.1f}"
    return f"{diff:+.3f}" if se is None else f"{diff:+.3f} ± {se:.3f}"


def _combined(a: Estimate, b: Estimate) -> float | None:
    return None if a.se is None or b.se is None else math.hypot(a.se, b.se)


def _clear(diff: float, se: float | None) -> bool | None:
    """Whether |diff| is beyond SIGNIFICANCE combined standard errors (None: no standard error to judge)."""
    if se is None:
        return None
    return abs(diff) > SIGNIFICANCE * se


# -------------------------------------------------------------------------------------------- findings


def _change_line(results: dict[str, Any], name: str, task: str, index: int) -> str:
    metric, rate = _metric(results), _is_rate(_metric(results))
    who = "Continued SFT" if name == "sft" else _branch_label(name)
    label = _task_label(results, task, index)
    points = _branches(results).get(name) or []
    start = estimate((results.get("init") or {}).get("eval", {}).get(task), metric)
    end = estimate(points[-1].get("eval", {}).get(task), metric) if points else None
    if start is None or end is None:
        return f"{who} on {label}: no {metric} to compare (missing at the SFT init or the last checkpoint)."
    diff, se = end.value - start.value, _combined(start, end)
    clear = _clear(diff, se)
    if clear is None:
        verdict = "no standard error available, so not judged"
    elif clear:
        verdict = f"a clear {'gain' if diff > 0 else 'drop'} (beyond {SIGNIFICANCE:g} combined SE)"
    else:
        verdict = f"within noise (within {SIGNIFICANCE:g} combined SE)"
    return (f"{who} on {label}: {_value(start, rate)} at the SFT init → {_value(end, rate)} at the last checkpoint "
            f"({_gflops(points[-1].get('flops'))} GFLOPs), {_delta(diff, se, rate)}: {verdict}.")


def _comparison_line(results: dict[str, Any], task: str, index: int) -> str:
    metric, rate = _metric(results), _is_rate(_metric(results))
    branches = _branches(results)
    sft_last, rl_last = branches["sft"][-1], branches["rl"][-1]
    sft, rl = (estimate(p.get("eval", {}).get(task), metric) for p in (sft_last, rl_last))
    head = (f"RL vs SFT on {_task_label(results, task, index)} at the last checkpoints "
            f"(SFT at {_gflops(sft_last.get('flops'))}, RL at {_gflops(rl_last.get('flops'))} GFLOPs)")
    if sft is None or rl is None:
        return f"{head}: no {metric} to compare."
    diff, se = rl.value - sft.value, _combined(rl, sft)
    numbers = f"RL {_value(rl, rate)} vs SFT {_value(sft, rate)}"
    clear = _clear(diff, se)
    if diff == 0:
        text = f"{numbers}: the two are equal ({_delta(0.0, se, rate)})."
    else:
        higher, lower = ("RL", "SFT") if diff > 0 else ("SFT", "RL")
        gap = _delta(abs(diff), se, rate).lstrip("+")
        if clear is None:
            text = f"{numbers}: {higher} is higher by {gap} (no standard error available, so not judged)."
        elif clear:
            text = (f"{numbers}: {higher} is higher by {gap}, beyond {SIGNIFICANCE:g} SE — "
                    f"{higher} generalizes better than {lower} on this shift.")
        else:
            text = (f"{numbers}: {higher} is higher by {gap}, within {SIGNIFICANCE:g} SE — "
                    "no clear difference between the branches.")
    line = f"{head}: {text}"
    flops = [float(p.get("flops") or 0.0) for p in (sft_last, rl_last)]
    if min(flops) > 0 and max(flops) / min(flops) - 1 > UNMATCHED_COMPUTE:
        line += " Caution: the two last checkpoints differ in compute by more than 10%, so this is not matched."
    return line


def _base_line(results: dict[str, Any]) -> str | None:
    tasks = _eval_tasks(results)
    if "base" not in results or not tasks:
        return None
    metric, rate, task = _metric(results), _is_rate(_metric(results)), tasks[0]
    base = estimate((results.get("base") or {}).get("eval", {}).get(task), metric)
    init = estimate((results.get("init") or {}).get("eval", {}).get(task), metric)
    if base is None or init is None:
        return f"SFT init vs base model on {task} (ID): no {metric} to compare."
    diff, se = init.value - base.value, _combined(base, init)
    clear = _clear(diff, se)
    numbers = (f"SFT init vs base model on {task} (ID): {_value(base, rate)} (base) → {_value(init, rate)} "
               f"(SFT init), {_delta(diff, se, rate)}")
    if clear is None:
        return f"{numbers}; no standard error available, so whether the SFT init learned the ID task is not judged."
    if clear and diff > 0:
        return f"{numbers}: the SFT init is clearly above the base model, so the initialisation learned the ID task."
    if clear:
        return f"{numbers}: the SFT init is clearly below the base model; the initialisation made the ID task worse."
    return (f"{numbers}: the SFT init is not clearly above the base model (within noise); "
            "the initialisation shows no clear learning on the ID task.")


def _notes(results: dict[str, Any]) -> list[str]:
    metric = _metric(results)
    notes = []
    estimates = [estimate(m, metric) for m in _all_evals(results)]
    if any(e is not None and e.se_source == "binomial" for e in estimates):
        notes.append(f"Note: the results give no standard error for {metric} in some evaluations; there the "
                     "report uses the binomial estimate sqrt(p(1-p)/n) with n = episodes"
                     + (" (approximate: this metric averages over steps, not episodes)." if metric != "success_rate"
                        else "."))
    if any(e is not None and e.se_source == "none" for e in estimates):
        notes.append(f"Note: some {metric} values have no standard error; their changes are shown but not judged.")
    return notes


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Plain-language findings, each computed from the numbers and their standard errors.

    Per branch and eval task, the change from the SFT init to the branch's last checkpoint (clear gain,
    clear drop or within noise at 2 combined SE); RL vs SFT on each OOD task at the last checkpoints;
    the SFT init vs the base model on the ID task when the base was evaluated; notes on estimated errors."""
    tasks = _eval_tasks(results)
    branches = _branches(results)
    lines = [_change_line(results, name, task, i) for name in branches for i, task in enumerate(tasks)]
    if branches.get("sft") and branches.get("rl"):
        lines += [_comparison_line(results, task, i) for i, task in enumerate(tasks) if i > 0]
    base = _base_line(results)
    if base:
        lines.append(base)
    return lines + _notes(results)


# ------------------------------------------------------------------------------------------------- plots


def _plot_name(task: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    taken.add(name)
    return f"{name}.png"


def _tick(value: float) -> str:
    return f"{value:,.0f}" if 1 <= value < 1e6 else f"{value:g}"


def _plain_log_ticks(ax: Any) -> None:
    """Plain-number tick labels on the log x axis (mathtext labels are slow to lay out and no clearer).

    Over less than two decades some minor ticks (2x, 5x; also 3x within one decade) are labelled too."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 else math.inf
    if decades < 2:
        labelled = (2, 3, 5) if decades < 1 else (2, 5)

        def minor(v: float, _: Any) -> str:
            mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
            return _tick(v) if round(mantissa) in labelled and abs(mantissa - round(mantissa)) < 1e-6 else ""

        ax.xaxis.set_minor_formatter(FuncFormatter(minor))
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


def _plot_task(results: dict[str, Any], task: str, index: int, path: Path) -> None:
    _figure(results, task, index).savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def _figure(results: dict[str, Any], task: str, index: int) -> Any:
    """One figure: metric vs training compute in GFLOPs (a log axis when it spans a decade), a line per
    branch starting at the SFT init."""
    # The object-oriented Figure renders through Agg without pyplot: no global backend switch, nothing to close.
    metric = _metric(results)
    rate = _is_rate(metric)
    scale = 100.0 if rate else 1.0
    init = results.get("init") or {}
    fig = Figure(figsize=(6.0, 4.0), dpi=DPI)
    ax = fig.add_subplot()
    drawn: list[float] = []
    for name, points in _branches(results).items():
        series = [(init.get("flops"), init.get("eval", {}).get(task))] if init else []
        series += [(p.get("flops"), p.get("eval", {}).get(task)) for p in points]
        xs, ys, es = [], [], []
        for flops, metrics in series:
            est = estimate(metrics, metric)
            if est is None or not flops or float(flops) <= 0:
                continue  # a log axis has no place for zero compute
            xs.append(float(flops) / 1e9)
            ys.append(scale * est.value)
            es.append(scale * est.se if est.se is not None else float("nan"))
        drawn += xs
        if xs:
            style = BRANCH_STYLES.get(name, {"marker": "^", "linestyle": "-."})
            ax.errorbar(xs, ys, yerr=es, markersize=5, capsize=3, linewidth=1.6, alpha=0.9, **style,
                        label="continued SFT" if name == "sft" else _branch_label(name))
    base = estimate((results.get("base") or {}).get("eval", {}).get(task), metric)
    if base is not None:
        ax.axhline(scale * base.value, color="0.5", linestyle=":", linewidth=1.2, label="base model")
    if drawn and max(drawn) / min(drawn) >= 10:
        ax.set_xscale("log")
        _plain_log_ticks(ax)
    else:  # within a decade a log axis may hold no labelled tick at all
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    ax.set_xlabel("training compute (GFLOPs)")
    ax.set_ylabel(f"{metric} (%)" if rate else metric)
    if rate:
        ax.set_ylim(-3, 103)
        ax.yaxis.set_major_formatter(PercentFormatter(100))
    ax.set_title(f"{task} ({_shift(results, task, index)})".replace("$", r"\$"))  # no mathtext from names
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- document


def _kv_rows(mapping: Any) -> list[list[str]]:
    if not isinstance(mapping, dict):
        return [["value", json.dumps(mapping, default=str)]] if mapping is not None else []
    return [[str(k), v if isinstance(v, str) else json.dumps(v, default=str)] for k, v in mapping.items()]


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _config_text(config: Any) -> tuple[str, str]:
    return "yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip()


def _intro(results: dict[str, Any]) -> str:
    tasks = _eval_tasks(results)
    branches = _branches(results)
    init = results.get("init") or {}
    flops = [float(p["flops"]) for points in branches.values() for p in points if p.get("flops") is not None]
    top = max(flops) if flops else None
    ood = ", ".join(f"{t} ({_shift(results, t, i)} shift)" for i, t in enumerate(tasks) if i > 0)
    episodes = sorted({m["episodes"] for m in _all_evals(results) if isinstance(m.get("episodes"), int)})
    runs = ", ".join(f"{'continued SFT' if n == 'sft' else _branch_label(n)} ({len(p)} checkpoint{'s' * (len(p) != 1)})"
                     for n, p in branches.items())
    text = (f"Starting from the model {results.get('model', '?')}, an SFT initialisation was trained on the "
            f"in-distribution task {tasks[0] if tasks else results.get('task', '?')}"
            f" ({_gflops(init.get('flops'))} GFLOPs), then branches were trained from it: {runs or 'none'}, "
            f"over {_gflops(init.get('flops'))}–{_gflops(top)} GFLOPs of training compute "
            "(counted from the start, the SFT init's included). Every checkpoint was evaluated on the ID task"
            + (f" and on the OOD tasks {ood}" if ood else " only"))
    if episodes:
        count = str(episodes[0]) if len(episodes) == 1 else f"{episodes[0]}–{episodes[-1]}"
        text += f", with {count} episodes per evaluation"
    text += f". Headline metric: {_metric(results)}; ± is one standard error."
    if results.get("env"):
        options = ", ".join(f"{k}={v}" for k, v in results["env"].items())
        text += f" Every task ran with these environment options over its preset's: {options}."
    if "base" in results:
        text += " The untrained base model was evaluated too."
    return text


def _blocks(results: dict[str, Any], plots: list[tuple[str, str, Path]]) -> list[tuple]:
    """The report as blocks: ("h1"|"h2"|"h3"|"p", text), ("ul", items), ("table", header, rows),
    ("img", alt, relative path, file), ("pre", language, text)."""
    metric, rate = _metric(results), _is_rate(_metric(results))
    tasks = _eval_tasks(results)
    branches = _branches(results)
    init = results.get("init") or {}
    blocks: list[tuple] = [
        ("h1", f"Study report: {results.get('preset', '?')} — {results.get('task', tasks[0] if tasks else '?')}"),
        ("p", _intro(results)),
        ("h2", "What the numbers show"),
    ]
    lines = summary_lines(results)
    findings = [line for line in lines if not line.startswith("Note:")]
    blocks.append(("ul", findings) if findings else ("p", "No findings: the results hold no numbers to compare."))
    blocks += [("p", line) for line in lines if line.startswith("Note:")]

    blocks.append(("h2", "Plots"))
    for _task, alt, path in plots:
        blocks.append(("img", alt, f"plots/{path.name}", path))

    header = ["model", *(_task_label(results, t, i) for i, t in enumerate(tasks)), "compute (GFLOPs)"]

    def cells(point: dict[str, Any]) -> list[str]:
        evals = point.get("eval") or {}
        return [_value(estimate(evals.get(t), metric), rate) for t in tasks]

    def row(label: str, point: dict[str, Any], flops: Any) -> list[str]:
        return [label, *cells(point), _gflops(flops)]

    rows = []
    if "base" in results:
        rows.append(row("base", results.get("base") or {}, None))
    rows.append(row("SFT init", init, init.get("flops")))
    for name, points in branches.items():
        if points:
            rows.append(row(f"{_branch_label(name)} (last)", points[-1], points[-1].get("flops")))
    blocks += [("h2", f"Final results ({metric})"), ("table", header, rows)]

    blocks.append(("h2", "Checkpoints"))
    for name, points in branches.items():
        who = "continued SFT" if name == "sft" else _branch_label(name)
        cp_rows = [["SFT init", _gflops(init.get("flops")), *cells(init)]]
        cp_rows += [[str(p.get("step", "?")), _gflops(p.get("flops")), *cells(p)] for p in points]
        blocks += [("h3", f"Branch: {who}"), ("table", ["step", "GFLOPs", *tasks], cp_rows)]

    blocks.append(("h2", "Reproducibility"))
    language, config = _config_text(results.get("config", {}))
    blocks += [("h3", "Config"), ("pre", language, config)]
    for key, title in (("seeds", "Seeds"), ("versions", "Versions"), ("machine", "Machine")):
        kv = _kv_rows(results.get(key))
        if kv:
            blocks += [("h3", title), ("table", ["key", "value"], kv)]
    timing = results.get("timing") or {}
    if isinstance(timing, dict) and timing:
        numeric = {k: float(v) for k, v in timing.items() if isinstance(v, (int, float))}
        trows = [[str(k), f"{float(v):.1f}", _duration(float(v))] if k in numeric else [str(k), str(v), "–"]
                 for k, v in timing.items()]
        trows.append(["total", f"{sum(numeric.values()):.1f}", _duration(sum(numeric.values()))])
        blocks += [("h3", "Timing per stage"), ("table", ["stage", "seconds", "h:mm:ss"], trows)]
    started, finished = results.get("started"), results.get("finished")
    when = f"Started {started or '–'}, finished {finished or '–'}"
    t0, t1 = _parse_time(started), _parse_time(finished)
    if t0 and t1 and (t0.tzinfo is None) == (t1.tzinfo is None):
        when += f" (wall clock {_duration((t1 - t0).total_seconds())})"
    blocks.append(("p", when + ". The raw results are in results.json next to this report."))
    return blocks


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[1]}]({block[2]})")
        elif kind == "pre":
            out.append(f"```{block[1]}\n{block[2]}\n```")
    return "\n\n".join(out) + "\n"


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:960px;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;"
    "padding:.25em .6em;text-align:left}th{background:#f3f3f3}pre{background:#f6f6f6;padding:.8em;overflow:auto}"
    "img{max-width:100%;display:block;margin:.5em 0 1em}li{margin:.3em 0}"
)


def _html(blocks: list[tuple]) -> str:
    esc = html.escape
    title = next((b[1] for b in blocks if b[0] == "h1"), "Study report")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("<table><thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header)
                       + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                       + "</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[3]).read_bytes()).decode("ascii")
            out.append(f'<img alt="{esc(block[1])}" src="data:image/png;base64,{data}">')
        elif kind == "pre":
            out.append(f"<pre>{esc(block[2])}</pre>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Write report.md, report.html (self-contained), plots/<task>.png and results.json under `out_dir`.

    Returns {"markdown": path, "html": path, "json": path, "plots": [paths, one per eval task]}."""
    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=_json_default) + "\n",
                         encoding="utf-8")
    taken: set[str] = set()
    plots: list[tuple[str, str, Path]] = []
    for index, task in enumerate(_eval_tasks(results)):
        path = plot_dir / _plot_name(task, taken)
        _plot_task(results, task, index, path)
        plots.append((task, f"{_metric(results)} vs training compute on {_task_label(results, task, index)}", path))
    blocks = _blocks(results, plots)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(_markdown(blocks), encoding="utf-8")
    html_path.write_text(_html(blocks), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, "json": json_path, "plots": [p for _, _, p in plots]}
