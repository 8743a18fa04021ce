"""A local model through the rollout runner: generated tokens/s, and the share of wall time spent
outside the model (runner, prompts, environments, chat templates, tokenization).

    python benchmarks/bench_hf_policy.py [--episodes N]

Goal (from the issue): under 5% of the time outside the model. Models are built offline at random
initialisation, so their answers are garbage and every episode runs to its last attempt: the
longest conversations, the worst case for prompt building.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from shiftlab.models.builders import build_causal_lm
from shiftlab.policies.hf import HFPolicy
from shiftlab.rollout import run_episodes
from shiftlab.task import get_preset


class Timed:
    """Wraps a policy and adds up the time spent inside it and the tokens it generated."""

    def __init__(self, inner):
        self.inner, self.name, self.seconds, self.tokens = inner, inner.name, 0.0, 0

    def generate(self, requests):
        start = time.perf_counter()
        responses = self.inner.generate(requests)
        self.seconds += time.perf_counter() - start
        self.tokens += sum(len(r.token_ids) for r in responses)
        return responses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=32, help="GP-L episodes per model (default 32)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--sizes", default="tiny,small", help="model sizes, comma-separated (default tiny,small)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {platform.machine()} python {platform.python_version()} torch {torch.__version__}")
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as directory:
            policy = Timed(HFPolicy(str(build_causal_lm(directory, size)), max_new_tokens=args.max_new_tokens,
                                    batch_size=16))
            run_episodes(get_preset("gp-l"), policy, range(2), batch_size=16)  # warm-up
            policy.seconds, policy.tokens = 0.0, 0
            start = time.perf_counter()
            run_episodes(get_preset("gp-l"), policy, range(args.episodes), batch_size=16)
            total = time.perf_counter() - start
            outside = 1 - policy.seconds / total
            verdict = "met" if outside < 0.05 else "MISSED"
            print(f"{size:<6} {policy.tokens / policy.seconds:9.0f} generated tokens/s   "
                  f"{outside * 100:5.2f}% of {total:6.2f} s outside the model (goal < 5%: {verdict})")


if __name__ == "__main__":
    main()
