"""Runner overhead: episodes per second through the batched rollout runner with the expert policy.

    python benchmarks/bench_rollout.py [--episodes N]

The expert answers instantly, so this measures what the runner, the prompts and the environments cost
around a model: the budget left for the model itself.
"""

from __future__ import annotations

import argparse
import platform
import time

from shiftlab.policies import ExpertPolicy
from shiftlab.rollout import run_episodes
from shiftlab.task import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=400, help="episodes per task (default 400)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    for task, overrides in (("gp-l", {}), ("gp-vl", {}), ("virl-l", {}), ("virl-vl", {"resolution": 256})):
        preset = get_preset(task)
        episodes = {"gp-vl": args.episodes // 2, "virl-vl": args.episodes // 10}.get(task, args.episodes)
        episodes = max(episodes, 4)
        run_episodes(preset, ExpertPolicy(), range(3), **overrides)  # warm caches and imports
        start = time.perf_counter()
        trajectories = run_episodes(preset, ExpertPolicy(), range(episodes), batch_size=32, **overrides)
        seconds = time.perf_counter() - start
        turns = sum(len(t.turns) for t in trajectories)
        print(f"{task:<10} {episodes / seconds:9.1f} episodes/s  {seconds / turns * 1e6:9.1f} us per turn "
              f"({episodes} episodes, {turns} turns, batch 32)")


if __name__ == "__main__":
    main()
