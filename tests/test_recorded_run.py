"""Behaviour kept: the same seeds give the trajectories, data, models and training numbers recorded
before the task registry moved every task into its own package (`recorded_run.py` says what is in the
fingerprint). Floats from model runs compare to a relative 1e-4 (another CPU may round differently);
everything else compares exactly."""

import json
import math

import pytest

pytest.importorskip("trl")

import recorded_run  # noqa: E402


def _diff(recorded, now, path="", tolerance=0.0):
    if isinstance(recorded, dict) and isinstance(now, dict):
        assert recorded.keys() == now.keys(), f"{path}: keys {sorted(recorded)} != {sorted(now)}"
        for key in recorded:
            _diff(recorded[key], now[key], f"{path}/{key}", tolerance)
    elif isinstance(recorded, list) and isinstance(now, list):
        assert len(recorded) == len(now), f"{path}: {len(recorded)} items recorded, {len(now)} now"
        for i, (a, b) in enumerate(zip(recorded, now, strict=True)):
            _diff(a, b, f"{path}[{i}]", tolerance)
    elif isinstance(recorded, float) and isinstance(now, (int, float)) and tolerance:
        assert math.isclose(recorded, now, rel_tol=tolerance, abs_tol=1e-9), f"{path}: {recorded} != {now}"
    else:
        assert recorded == now, f"{path}: {recorded!r} recorded, {now!r} now"


@pytest.fixture(scope="module")
def recorded():
    return json.loads(recorded_run.RECORD.read_text())


def test_oracle_trajectories_and_evaluation_are_unchanged(recorded, tmp_path):
    _diff(recorded["oracle"], recorded_run.oracle_trajectories(), "oracle")
    _diff(recorded["evaluation"], recorded_run.evaluation_results(tmp_path), "evaluation")


def test_corpus_and_training_data_are_unchanged(recorded):
    _diff(recorded["data"], recorded_run.data_fingerprints(), "data")


def test_built_model_greedy_answers_and_training_runs_are_unchanged(recorded, tmp_path):
    _diff(recorded["models"], recorded_run.model_runs(tmp_path), "models", tolerance=1e-4)
