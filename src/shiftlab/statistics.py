"""The study's statistics: intervals for rates and paired tests between models scored on the same episodes.

Every model of a study is evaluated on the same episodes (the same env seeds), so two models are best
compared episode by episode: a paired test removes the spread between easy and hard episodes that an
unpaired comparison of two rates leaves in. The tests are scipy's; these functions only choose them and
shape their inputs, so that a report states which test gave which number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

PERMUTATIONS = 9999  # random sign flips; scipy enumerates all 2**n instead when that is fewer
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class McNemar:
    """Episodes only the first model solved (n10), only the second (n01), and the exact two-sided p."""

    n10: int
    n01: int
    p: float


@dataclass(frozen=True)
class Paired:
    """Model a minus model b over the same episodes, each averaged over its seeds first.

    `ci_low`/`ci_high` bound the mean per-episode difference (95% paired bootstrap, percentile); `p` is
    the two-sided paired sign-flip permutation test of a zero mean difference; `test` names it."""

    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p: float
    n_episodes: int
    n_seeds_a: int
    n_seeds_b: int
    test: str


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a rate: unlike the normal one it stays within [0, 1] and does not
    shrink to a point at 0% or 100%, where small evaluations often sit.

    Raises ValueError for n == 0: there is no rate to bound, and a made-up interval would print."""
    if n <= 0:
        raise ValueError(f"a rate over {n} episodes has no interval")
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} episodes")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _binary(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"{name} holds values other than 0 and 1")
    return array


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> McNemar:
    """The exact McNemar test of two models' 0/1 outcomes on the same episodes: only the episodes where
    they disagree carry information, and under no difference each such episode goes either way with
    probability 1/2 (a binomial test). p is 1.0 when they never disagree."""
    x, y = _binary(a, "a"), _binary(b, "b")
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"the two outcome lists differ in length ({x.size} and {y.size})")
    n10, n01 = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
    p = stats.binomtest(n10, n10 + n01, 0.5).pvalue if n10 + n01 else 1.0
    return McNemar(n10, n01, float(p))


def _per_episode(runs: Sequence[Sequence[float]], name: str) -> np.ndarray:
    array = np.asarray(runs, dtype=float)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be one or more runs of the same, non-zero number of episodes")
    return array.mean(axis=0)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_difference(a_runs: Sequence[Sequence[float]], b_runs: Sequence[Sequence[float]],
                      seed: int = 0) -> Paired:
    """Model a minus model b, paired by episode: each model's per-episode values are averaged over its
    seeds (b may be a single run, e.g. the shared SFT init), then differenced episode by episode.

    The unit of the test and the interval is the episode, so they answer "on episodes like these, does the
    seed-averaged a score differ from b?"; with a handful of seeds they do not model the spread between
    training seeds as a separate source of variance. Deterministic for a given `seed`."""
    x, y = _per_episode(a_runs, "a_runs"), _per_episode(b_runs, "b_runs")
    if x.size != y.size:
        raise ValueError(f"a and b were scored on different numbers of episodes ({x.size} and {y.size})")
    n = x.size
    exact = 2**n <= PERMUTATIONS
    test = f"paired sign-flip permutation test ({'exact' if exact else f'{PERMUTATIONS} resamples'})"
    differences = x - y
    diff = float(differences.mean())
    p = _permutation_p(x, y, seed) if differences.any() else 1.0
    if n < 2:
        low, high = math.nan, math.nan
    elif np.all(differences == differences[0]):  # every resample has the same mean
        low, high = diff, diff
    else:
        ci = stats.bootstrap((x, y), _mean_difference, paired=True, vectorized=True, confidence_level=0.95,
                             n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", random_state=seed)
        low, high = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
    return Paired(float(x.mean()), float(y.mean()), diff, low, high, p, n, len(a_runs), len(b_runs), test)


def _permutation_p(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    result = stats.permutation_test((x, y), _mean_difference, permutation_type="samples", vectorized=True,
                                    n_resamples=PERMUTATIONS, alternative="two-sided", random_state=seed)
    return float(min(1.0, result.pvalue))
