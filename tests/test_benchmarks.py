"""The benchmark scripts still run (their figures are recorded in BENCHMARKS.md, not asserted here)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_general_points_benchmark_runs():
    script = BENCHMARKS / "bench_general_points.py"
    result = subprocess.run([sys.executable, str(script), "--repeat", "100"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    for line in ("solver: all 1820", "text: reset(seed) + step", "image 448px", "image 1200px", "verifier: slowest"):
        assert line in result.stdout


def test_rollout_benchmark_runs():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_rollout.py"), "--episodes", "20"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "episodes/s" in result.stdout and "virl-vl" in result.stdout


def test_hf_policy_benchmark_runs():
    pytest.importorskip("transformers")
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_hf_policy.py"), "--sizes", "tiny",
                             "--episodes", "2", "--max-new-tokens", "8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "outside the model" in result.stdout


def test_sft_benchmark_runs():
    pytest.importorskip("trl")
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_sft.py"), "--size", "tiny", "--steps", "6",
                             "--episodes", "16", "--batch-size", "4"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "of the matmul peak" in result.stdout and "tokens/s median" in result.stdout


def test_grpo_benchmark_runs(tmp_path):
    pytest.importorskip("trl")
    report = tmp_path / "grpo.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_grpo.py"), "--quick", "--json", str(report)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert any(row.startswith("| shiftlab |") for row in rows) and any(row.startswith("| TRL |") for row in rows)
    ratio_line = next(line for line in result.stdout.splitlines() if line.startswith("shiftlab / TRL: "))
    ratio = float(ratio_line.removeprefix("shiftlab / TRL: ").split("x", 1)[0])
    assert math.isfinite(ratio) and ratio > 0
    numbers = json.loads(report.read_text())
    assert numbers["ratio"]["samples_per_second"] == pytest.approx(ratio, rel=0.01, abs=0.01)
    assert numbers["results"]["TRL"]["samples_per_second"] > 0


def test_multiturn_grpo_benchmark_runs(tmp_path):
    pytest.importorskip("trl")
    report = tmp_path / "multiturn.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_multiturn_grpo.py"), "--quick", "--json",
                             str(report)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(report.read_text())
    assert numbers["results"]["shiftlab"]["turns_per_episode"] == 2.0  # a wrong first answer gets its revision
    assert numbers["trl_over_shiftlab_seconds"] > 0
    assert "shiftlab step split" in result.stdout
