"""The study's figures: one per branch, the headline metric against training compute on every evaluation
task, so the ID task and its shifts read together. Each seed is a thin line and the mean over seeds a bold
one, all starting at the SFT init, which makes the spread between training seeds visible next to the trend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter

from shiftlab.study.numbers import (
    branch_label,
    branches,
    checkpoints,
    eval_tasks,
    is_rate,
    metric,
    metrics_of,
    shift,
)

DPI = 110
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


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


def _xy(holder: dict[str, Any] | None, task: str, name: str, scale: float) -> tuple[float, float] | None:
    """A point in GFLOPs and the metric, or None where a log axis has no place for it."""
    flops, metrics = (holder or {}).get("flops"), metrics_of(holder, task)
    value = (metrics or {}).get(name)
    if not isinstance(flops, (int, float)) or flops <= 0 or not isinstance(value, (int, float)):
        return None
    return float(flops) / 1e9, scale * float(value)


def branch_figure(results: dict[str, Any], branch: str) -> Figure:
    """The branch's figure: per eval task, a thin line per seed and the bold mean over seeds (at each step,
    the seeds' mean compute and mean value), from the SFT init's point; the base model dotted."""
    # The object-oriented Figure renders through Agg without pyplot: no global backend switch, nothing to close.
    name = metric(results)
    rate = is_rate(name)
    scale = 100.0 if rate else 1.0
    runs = branches(results).get(branch) or {}
    init = results.get("init")
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI)
    ax = fig.add_subplot()
    drawn: list[float] = []
    based = False
    for i, task in enumerate(eval_tasks(results)):
        colour = COLOURS[i % len(COLOURS)]
        start = _xy(init, task, name, scale)
        for points in runs.values():
            xy = [start] if start else []
            xy += [q for p in points if (q := _xy(p, task, name, scale))]
            if xy:
                ax.plot(*zip(*xy, strict=True), color=colour, linewidth=0.9, alpha=0.35)
        mean = [start] if start else []
        for _, by_seed in checkpoints(runs):
            found = [q for p in by_seed.values() if (q := _xy(p, task, name, scale))]
            if found:
                mean.append((sum(x for x, _ in found) / len(found), sum(y for _, y in found) / len(found)))
        kind = shift(results, task)
        label = f"{task} ({'ID' if kind == 'id' else f'{kind} shift'})".replace("$", r"\$")  # no mathtext
        if mean:
            ax.plot(*zip(*mean, strict=True), color=colour, linewidth=2.2, marker="o", markersize=4, label=label)
            drawn += [x for x, _ in mean]
        base = (metrics_of(results.get("base"), task) or {}).get(name)
        if isinstance(base, (int, float)):
            ax.axhline(scale * float(base), color=colour, linestyle=":", linewidth=1.1, alpha=0.7)
            based = True
    if drawn and max(drawn) / min(drawn) >= 10:
        ax.set_xscale("log")
        _plain_log_ticks(ax)
    else:  # within a decade a log axis may hold no labelled tick at all
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    ax.set_xlabel("training compute (GFLOPs)")
    ax.set_ylabel(f"{name} (%)" if rate else name)
    if rate:
        ax.set_ylim(-3, 103)
        ax.yaxis.set_major_formatter(PercentFormatter(100))
    seeds = len(runs)
    ax.set_title(f"{branch_label(branch)} branch: {seeds} seed{'s' * (seeds != 1)} (thin), mean (bold)"
                 .replace("$", r"\$"))
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if based:
        handles.append(Line2D([], [], color="0.4", linestyle=":", linewidth=1.1))
        labels.append("base model")
    if handles:
        ax.legend(handles, labels, loc="best", frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def write_branch_plot(results: dict[str, Any], branch: str, path: Path) -> None:
    branch_figure(results, branch).savefig(path, format="png", dpi=DPI, metadata={"Software": None})
