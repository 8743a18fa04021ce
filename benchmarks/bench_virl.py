"""Speed of V-IRL: city generation, text steps, street-view grids (cold and cached).

    python benchmarks/bench_virl.py [--repeat N]

Goals (from the issue): one city generated in under 2 s; a text step under 200 us; a 2x2 street-view
observation of 4 x 256 px under 30 ms, and near zero when cached.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import shiftlab  # noqa: F401  (registers the environments)
from shiftlab.tasks.virl.env import VirlEnv
from shiftlab.tasks.virl.expert import expert_answer
from shiftlab.tasks.virl.geo import to_xy
from shiftlab.tasks.virl.render import render_grid
from shiftlab.tasks.virl.routes import route_record
from shiftlab.tasks.virl.world import CITIES, build_world


def line(name: str, value: float, unit: str, goal: float | None = None, extra: str = "") -> None:
    verdict = "" if goal is None else f"  (goal < {goal:g} {unit}: {'met' if value < goal else 'MISSED'})"
    print(f"{name:<56} {value:10.2f} {unit}{extra}{verdict}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="text steps measured (default 2000)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} python {platform.python_version()}")

    # City generation, from cold, one district per city (the lru cache is bypassed by new districts).
    times = {}
    for city in CITIES:
        start = time.perf_counter()
        build_world(city, 7)
        times[city] = time.perf_counter() - start
    slowest = max(times, key=times.get)
    line("city generation: median over 9 cities", median(list(times.values())), "s", goal=2.0)
    line(f"city generation: slowest ({slowest})", times[slowest], "s", goal=2.0)
    start = time.perf_counter()
    world = build_world("new_york", 7)
    for i in range(20):
        route_record(world, i, "train")
    line("route generation: mean of 20 New York routes", (time.perf_counter() - start) / 20 * 1e3, "ms")

    # Text steps: the expert walks routes; each step is verify + advance + info.
    env = VirlEnv(observation="text", routes_per_city=50)
    for route in range(50):  # generate the pool first: resets below measure rail building, not routes
        env.source.record(route)
    steps, resets = [], []
    seed = 0
    while len(steps) < args.repeat:
        start = time.perf_counter()
        _, info = env.reset(seed=seed)
        resets.append(time.perf_counter() - start)
        seed += 1
        done = False
        while not done:
            answer = expert_answer(info)
            start = time.perf_counter()
            _, _, terminated, truncated, info = env.step(answer)
            steps.append(time.perf_counter() - start)
            done = terminated or truncated
    line("text: step (verify + advance + info)", median(steps) * 1e6, "us", goal=200,
         extra=f"   p90 {sorted(steps)[int(0.9 * len(steps))] * 1e6:.1f} us, n={len(steps)}")
    line("text: reset(seed) (rail for a generated route, info)", median(resets) * 1e6, "us",
         extra=f"   n={len(resets)}")

    # Street views: four 256 px tiles at fresh positions, then the same position again (cached).
    world = build_world("new_york", 0)
    record = route_record(world, 0, "train")
    points = [to_xy(world.anchor, p) for p in record["route_results"]["geocode_list"]]
    cold, warm = [], []
    for k in range(24):
        x, y = points[k % len(points)]
        x, y, heading = x + 0.37 * k, y - 0.21 * k, (37.0 * k) % 360  # a new position every time
        start = time.perf_counter()
        render_grid(world.scene, x, y, heading, size=256)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        render_grid(world.scene, x, y, heading, size=256)
        warm.append(time.perf_counter() - start)
    line("image: 2x2 grid of 256 px views, new position", median(cold) * 1e3, "ms", goal=30)
    line("image: the same grid again (cached)", median(warm) * 1e3, "ms")


if __name__ == "__main__":
    main()
