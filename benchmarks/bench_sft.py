"""SFT throughput: tokens/s through the whole TRL training step, as a fraction of this machine's
measured matmul peak, and peak memory.

    python benchmarks/bench_sft.py [--size small] [--steps 40] [--batch-size 32]

Both numbers come from the same run: the peak is the best of several large fp32 (bf16 on a GPU)
matmuls, timed before and after the SFT run, which trains a freshly built model on GP-L expert
data. Model FLOPs per token are 6*N (the paper's 6ND count; attention scores are not included), so
utilisation = 6 * N * tokens/s / peak. Goal (from the issue): at least 50%.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from shiftlab.training.base_model import build_base_model
from shiftlab.training.compute import read_compute
from shiftlab.training.config import load_config
from shiftlab.training.sft import SFTRunConfig, run_sft


def matmul_peak(device: str, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matmuls at a few sizes, each run for about `seconds`."""
    best = 0.0
    for n in (512, 1024, 2048):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        torch.mm(a, b)
        _sync(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            count += 1
        _sync(device)
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
    return best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class StepClock(TrainerCallback):
    """Time and tokens at the end of every optimizer step."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps (default 40)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=512, help="GP-L expert episodes (default 512)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    print(f"machine: {name}, {torch.get_num_threads()} threads, python {platform.python_version()}, "
          f"torch {torch.__version__}")
    before = matmul_peak(device, dtype)

    with tempfile.TemporaryDirectory() as directory:
        model_dir = build_base_model(Path(directory) / "model", kind="lm", size=args.size, seed=0)
        config = load_config(SFTRunConfig, overrides={
            "model": str(model_dir), "output_dir": str(Path(directory) / "run"), "tasks": ["gp-l"],
            "episodes": args.episodes, "max_steps": args.steps, "batch_size": args.batch_size,
            "learning_rate": 1e-4, "save_steps": 10**6, "logging_steps": 10**6, "report_to": ["none"],
        })
        clock = StepClock()
        result = run_sft(config, callbacks=[clock])
        parameters = read_compute(result.final_model)["parameters"]

    # The machine's peak is the best matmul rate seen before or after the run: a noisy neighbour can
    # only make a measurement lower, never higher.
    after = matmul_peak(device, dtype)
    peak = max(before, after)
    print(f"matmul peak ({str(dtype).removeprefix('torch.')}): {peak / 1e9:.1f} GFLOP/s "
          f"(before {before / 1e9:.1f}, after {after / 1e9:.1f})")

    # Steady state: per-step rates after the first few steps (allocator and kernel warm-up).
    skip = min(5, len(clock.marks) // 4)
    rates = [(t1 - t0) and (n1 - n0) / (t1 - t0)
             for (t0, n0), (t1, n1) in zip(clock.marks[skip:], clock.marks[skip + 1:], strict=False)]
    median = statistics.median(rates)
    spread = (min(rates), max(rates))
    utilisation = 6 * parameters * median / peak
    if device == "cuda":
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
    else:
        scale = 1 if sys.platform == "darwin" else 1024
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30:.2f} GiB RSS"
    verdict = "met" if utilisation >= 0.5 else "MISSED"
    print(f"model: {args.size}, {parameters / 1e6:.2f} M parameters in the 6ND count, batch {args.batch_size}, "
          f"{result.tokens / max(1, result.steps) / args.batch_size:.0f} tokens per sequence on average")
    print(f"SFT: {median:,.0f} tokens/s median over {len(rates)} steps (range {spread[0]:,.0f}-{spread[1]:,.0f})")
    print(f"utilisation: {utilisation * 100:.1f}% of the matmul peak (goal >= 50%: {verdict}); peak memory {memory}")


if __name__ == "__main__":
    main()
