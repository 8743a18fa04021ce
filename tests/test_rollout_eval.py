"""Batched rollouts and the evaluation harness: the expert everywhere, batching, resume, metrics."""

from __future__ import annotations

import json

import pytest

from shiftlab.cli import main
from shiftlab.evaluation import EvaluationError, evaluate
from shiftlab.metrics import episode_metrics
from shiftlab.policies import ExpertPolicy, RandomPolicy, make_policy
from shiftlab.rollout import run_episodes
from shiftlab.task import get_preset, list_presets

ALL = ",".join(p.name for p in list_presets())


def test_expert_reaches_100_percent_on_every_preset_through_the_cli(tmp_path, capsys):
    code = main(["eval", "--policy", "expert", "--tasks", ALL, "--episodes", "4", "--resolution", "64",
                 "--out", str(tmp_path), "--quiet"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == set(ALL.split(","))
    for name, m in results.items():
        assert m["episodes"] == 4 and m["success_rate"] == 1.0 and m["success_stderr"] == 0.0, name
        assert m["success_within_k"][0] == 1.0
        assert m["shift"] == get_preset(name).shift
    assert results["gp-vl"]["recognition_accuracy"] == 1.0 and "recognition_accuracy" not in results["gp-l"]
    assert results["virl-l"]["step_accuracy"] == 1.0 and "step_accuracy" not in results["gp-l"]
    assert len(results["virl-vl/visual-ood"]["per_city"]) == 2  # 4 episodes: routes 0-3, two cities
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n") >= len(results) + 2 and "gp-vl/visual-ood | visual" in table


@pytest.mark.parametrize("task", ["gp-l", "virl-l"])
def test_batched_and_unbatched_rollouts_agree(task):
    preset = get_preset(task)
    one = run_episodes(preset, RandomPolicy(3), range(12), seed=5, batch_size=1)
    many = run_episodes(preset, RandomPolicy(3), range(12), seed=5, batch_size=8)
    by_episode = lambda ts: {t.episode: t.to_json() for t in ts}  # noqa: E731
    assert by_episode(one) == by_episode(many)


def test_trajectories_record_what_training_needs():
    (trajectory,) = run_episodes(get_preset("gp-vl"), RandomPolicy(0), [0], resolution=64)
    record = trajectory.to_json()
    first = record["turns"][0]
    assert first["messages"][0]["content"][0] == {"type": "image"}  # the pixels are not written out
    assert set(first) >= {"messages", "response", "token_ids", "logprobs", "reward", "feedback", "done"}
    assert record["turns"][-1]["done"] and not any(t["done"] for t in record["turns"][:-1])
    if len(record["turns"]) > 1:  # the revision turn carries the previous answer and its feedback
        second = record["turns"][1]["messages"]
        assert second[-2]["content"] == first["response"] and first["feedback"] in second[-1]["content"]
    json.dumps(record)


class Interrupting:
    """A policy that stops the run (as Ctrl-C would) after a number of batches."""

    def __init__(self, inner, batches: int):
        self.inner, self.left, self.name = inner, batches, inner.name

    def generate(self, requests):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.inner.generate(requests)


def test_interrupted_evaluation_resumes_to_the_same_numbers(tmp_path):
    tasks = ["gp-l", "virl-l"]
    whole = evaluate(tasks, RandomPolicy(7), 10, tmp_path / "whole", batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tasks, Interrupting(RandomPolicy(7), 9), 10, tmp_path / "cut", batch_size=4)
    written = (tmp_path / "cut" / "trajectories" / "gp-l.jsonl").read_text().splitlines()
    assert 0 < len(written) <= 10
    with open(tmp_path / "cut" / "trajectories" / "gp-l.jsonl", "a") as handle:
        handle.write('{"episode": 3, "trunc')  # a line cut short by the kill
    resumed = evaluate(tasks, RandomPolicy(7), 10, tmp_path / "cut", batch_size=4)
    assert resumed == whole
    lines = (tmp_path / "cut" / "trajectories" / "gp-l.jsonl").read_text().splitlines()
    episodes = [json.loads(line)["episode"] for line in lines if line.endswith("}")]
    assert sorted(episodes) == list(range(10))  # each episode played once: finished ones were not redone
    assert episodes[: len(written)] == [json.loads(line)["episode"] for line in written]


def test_resuming_with_other_settings_is_refused(tmp_path):
    evaluate(["gp-l"], ExpertPolicy(), 2, tmp_path)
    with pytest.raises(EvaluationError, match="policy"):
        evaluate(["gp-l"], RandomPolicy(0), 2, tmp_path)
    with pytest.raises(EvaluationError, match="seed"):
        evaluate(["gp-l"], ExpertPolicy(), 2, tmp_path, seed=1)


def test_success_within_k_counts_answers_at_the_worst_point():
    def record(success, points):
        return {"success": success, "return": 0.0, "start": {}, "turns": [{"point": p} for p in points]}

    records = [record(True, [0]), record(True, [0, 0]), record(True, [0, 1, 1, 2]), record(False, [0, 0])]
    assert episode_metrics(records, 2)["success_within_k"] == [0.25, 0.75]
    assert episode_metrics(records, 2)["success_rate"] == 0.75


@pytest.mark.parametrize("spec", ["expert", "random", "random:4"])
def test_policy_specs(spec):
    assert make_policy(spec).name.startswith(spec.split(":")[0])


@pytest.mark.parametrize(("spec", "message"), [("", "unknown policy"), ("expert:1", "unknown policy"),
                                             ("gpt", "unknown policy"), ("random:x", "random:SEED"),
                                             ("random:-1", "random:SEED"), (f"random:{2**32}", "random:SEED")])
def test_bad_policy_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        make_policy(spec)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--tasks", "gp-zz", "--out", str(tmp_path)]) == 2
    assert main(["eval", "--policy", "oracle", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown task" in err[0] and "unknown policy" in err[1]


def test_results_carry_each_episodes_outcome_in_episode_order(tmp_path):
    """The paired samples a study compares: one value per episode index, agreeing with the trajectories
    and with the aggregate figures."""
    results = evaluate(["virl-l"], RandomPolicy(1), 6, tmp_path)
    m = results["virl-l"]
    lines = [json.loads(x) for x in (tmp_path / "trajectories" / "virl-l.jsonl").read_text().splitlines()]
    by_episode = {r["episode"]: r for r in lines}
    assert m["episode_success"] == [int(by_episode[i]["success"]) for i in range(6)]
    assert sum(m["episode_success"]) / 6 == m["success_rate"]
    assert len(m["episode_step_accuracy"]) == 6 and all(0 <= v <= 1 for v in m["episode_step_accuracy"])
    assert min(m["episode_step_accuracy"]) <= m["step_accuracy"] <= max(m["episode_step_accuracy"])


def test_progress_moves_with_every_turn_not_only_with_finished_episodes(tmp_path):
    """A slow model can take minutes before its first episode ends: the bar counts answers as they come."""
    import io

    from tqdm import tqdm

    counts = []
    trajectories = run_episodes(get_preset("gp-l"), RandomPolicy(1), range(6), batch_size=4, on_turn=counts.append)
    assert sum(counts) == sum(len(t.turns) for t in trajectories) and counts[0] == 4 and len(counts) > 1
    stream = io.StringIO()

    def progress(task, total, done):
        return tqdm(total=total, initial=len(done), desc=task, file=stream, mininterval=0)

    evaluate(["gp-l"], RandomPolicy(1), 6, tmp_path, batch_size=4, progress=progress)
    assert f"{sum(counts)} answers" in stream.getvalue()
