"""Speed of the GeneralPoints environment: solver, text reset+step, image observations, verifier.

    python benchmarks/bench_general_points.py [--repeat N]

Prints medians (and a few percentiles) measured in this one run, plus a naive baseline solver that
enumerates every expression at every reset, as the original environment does, for a ratio. Goals
(from the issue): text reset + one step under 50 us; an image observation under 3 ms at 448 px and
under 15 ms at 1200 px.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from fractions import Fraction

import gymnasium as gym
from gymnasium.utils import seeding

import shiftlab  # noqa: F401  (registers the environments)
from shiftlab.tasks.general_points import GeneralPointsEnv, expert_answer, solver, verify


def timed(fn, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def summary(name: str, seconds: list[float], unit: str = "us", goal: float | None = None) -> float:
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    values = sorted(s * scale for s in seconds)
    median = statistics.median(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    verdict = "" if goal is None else f"  (goal < {goal:g} {unit}: {'met' if median < goal else 'MISSED'})"
    print(f"{name:<58} median {median:9.2f} {unit}   p90 {p90:9.2f} {unit}   n={len(values)}{verdict}")
    return median


def naive_solvable(values, target=24) -> bool:
    """Baseline: every permutation, tree shape and operator triple, evaluated at each call."""

    def trees(nums):
        if len(nums) == 1:
            yield Fraction(nums[0])
            return
        for split in range(1, len(nums)):
            for a in trees(nums[:split]):
                for b in trees(nums[split:]):
                    yield a + b
                    yield a - b
                    yield a * b
                    if b != 0:
                        yield a / b

    found = False
    for perm in set(itertools.permutations(values)):
        for value in trees(perm):
            found = found or value == target  # no early exit: the original collects every solution
    return found


def bench_images(resolution: int, goal: float, repeat: int, answer: str) -> None:
    env = GeneralPointsEnv(observation="image", resolution=resolution, max_attempts=10**9)
    env.reset(seed=0)
    cold = timed(lambda s: env.reset(seed=10**6 + s), 1)[0]
    for seed in range(400):  # every card face drawn once
        env.reset(seed=seed)
    summary(f"image {resolution}px: reset(seed), i.e. deal + render + copy", timed(lambda s: env.reset(seed=s), repeat),
            "ms", goal=goal)
    summary(f"image {resolution}px: step (verify + observation copy)", timed(lambda s: env.step(answer), repeat), "ms")
    print(f"{'  first reset, card faces not drawn yet':<58} {cold * 1e3:9.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20000, help="episodes per text measurement (default 20000)")
    args = parser.parse_args()
    n = args.repeat
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")

    # Solver: the full table for every 4-card hand, built from nothing.
    solver.clear_caches()
    hands = list(itertools.combinations_with_replacement(range(1, 14), 4))
    start = time.perf_counter()
    solvable = sum(bool(solver.solutions(h)) for h in hands)
    print(f"{'solver: all 1820 four-card hands (values 1-13), cold':<58} {time.perf_counter() - start:9.3f} s "
          f"  ({solvable} solvable)")
    sample = hands[:: max(1, len(hands) // min(200, max(10, n // 100)))]
    naive = summary("baseline: enumerate every expression per hand", timed(lambda i: naive_solvable(sample[i]),
                                                                         len(sample)), "ms")

    # Text episodes: one reset and one step. The variants run interleaved in rounds so that all of
    # them see the same machine conditions (this 2-core VM drifts by tens of percent).
    env = GeneralPointsEnv(observation="text")
    made = gym.make("shiftlab/GeneralPoints-v0")
    answers = {}
    for seed in range(n):
        _, info = env.reset(seed=seed)
        answers[seed] = expert_answer(info)
    wrong = '{"cards": ["A", "2", "3", "4"], "number": [1, 2, 3, 4], "formula": "1+2+3+4=24"}'

    def seeded_correct(seed):
        env.reset(seed=seed)
        env.step(answers[seed])

    def seeded_wrong(seed):
        env.reset(seed=seed)
        env.step(wrong)

    def unseeded_wrong(seed):
        env.reset()
        env.step(wrong)

    def via_make(seed):
        made.reset(seed=seed)
        made.step(answers[seed])

    variants = {
        "text: reset(seed) + step(correct answer)": seeded_correct,
        "text: reset(seed) + step(wrong answer)": seeded_wrong,
        "text: reset() + step(wrong answer), seeded once": unseeded_wrong,
        "text via gymnasium.make (checker wrappers), reset(seed)": via_make,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    rounds = 20
    for r in range(rounds):
        for name, fn in variants.items():
            times[name] += timed(lambda i, fn=fn, r=r: fn((r * n // rounds + i) % n), n // rounds)
    medians = {name: summary(name, values, "us", goal=50) for name, values in times.items()}
    ours = medians["text: reset(seed) + step(correct answer)"]
    print(f"{'ratio baseline per-hand enumeration / our reset(seed)+step':<58} {naive * 1e3 / ours:9.0f} x")

    # Image observations: a new hand rendered and returned (deal + render + copy), after warm-up.
    for resolution, goal in ((448, 3.0), (1200, 15.0)):
        bench_images(resolution, goal, max(10, n // 10), wrong)

    # The cost of gymnasium's reseeding alone (numpy SeedSequence + PCG64), for reference.
    summary("gymnasium reseeding alone (seeding.np_random)", timed(lambda s: seeding.np_random(s), n), "us")

    # The verifier on hostile input: worst case over a fixed list.
    hostile = [
        "(" * 1_000_000, "x" * 99_999, "[" * 99_999, ('"formula": "1+2" ' * 6000)[:99_999],
        ('"cards": [' * 10_000)[:99_999], '"formula": "' + "(" * 400 + "4", '"formula": "' + "9" * 400 + '"',
        '"formula": "9**9**9"', '"formula": "1/0"', b"\xff\xfe" * 40_000, "ormula" * 16_000,
    ]
    worst = max(min(timed(lambda i, h=h: verify(h, [4, 3, 2, 10], 24, cards=["4", "3", "2", "10"],
                                                check_recognition=True), 3)) for h in hostile)
    label = f"verifier: slowest of {len(hostile)} hostile inputs (min of 3 runs)"
    print(f"{label:<58} {worst * 1e3:9.2f} ms")


if __name__ == "__main__":
    main()
