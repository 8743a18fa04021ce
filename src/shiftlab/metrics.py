"""The figures every task reports, from trajectory summaries: success, its standard error, the mean
return, and success within k attempts at every decision point."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any


def stderr(p: float, n: int) -> float:
    """The binomial standard error of a rate `p` over `n` episodes."""
    return math.sqrt(p * (1 - p) / n) if n else 0.0


def rate(records: Sequence[dict], hit: Callable[[dict], bool]) -> tuple[float, float]:
    """The share of `records` that `hit`, and its standard error."""
    hits = sum(1 for r in records if hit(r))
    p = hits / len(records) if records else 0.0
    return p, stderr(p, len(records))


def _max_answers_at_a_point(record: dict) -> int:
    counts: dict[int, int] = defaultdict(int)
    for turn in record["turns"]:
        counts[turn["point"]] += 1
    return max(counts.values(), default=0)


def episode_metrics(records: Sequence[dict], attempts: int) -> dict[str, Any]:
    """`episodes`, `success_rate`, `success_stderr`, `mean_reward`, and `success_within_k` for k = 1
    .. `attempts`: solved with at most k answers at every decision point."""
    success, error = rate(records, lambda r: r["success"])
    return {
        "episodes": len(records),
        "success_rate": success,
        "success_stderr": error,
        "mean_reward": sum(r["return"] for r in records) / len(records) if records else 0.0,
        "success_within_k": [
            rate(records, lambda r, k=k: r["success"] and _max_answers_at_a_point(r) <= k)[0]
            for k in range(1, attempts + 1)
        ],
    }
