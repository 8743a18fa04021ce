"""`shiftlab study` end to end on the `tiny` preset: every stage runs, the report's numbers are the
evaluations' numbers, the branches meet at matched compute, and an interrupted study resumes without
redoing finished stages and gives the same results."""

import json

import pytest

pytest.importorskip("trl")

from shiftlab.cli import _config, main  # noqa: E402
from shiftlab.study import pipeline  # noqa: E402
from shiftlab.study.config import StudyConfig, preset_values  # noqa: E402
from shiftlab.training.config import ConfigError, load_config  # noqa: E402

STABLE = ("preset", "task", "eval_tasks", "shifts", "metric", "base", "init", "branches", "seeds")


def _tiny(out):
    return load_config(StudyConfig, overrides={**preset_values("tiny"), "output_dir": str(out)})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    lines = []
    return out, pipeline.run_study(_tiny(out), log=lines.append), lines


def _pct(metrics):
    return f"{100 * metrics['success_rate']:.1f}% ± {100 * metrics['success_stderr']:.1f}"


def test_every_stage_runs_and_the_report_holds_the_evaluations_numbers(study):
    out, result, lines = study
    paths = result["paths"]
    for key in ("markdown", "html", "json"):
        assert paths[key].is_file()
    assert {p.name for p in paths["plots"]} == {"gp-l.png", "gp-l_rule-ood.png"}
    assert {p.stem for p in (out / "stages").glob("*.json")} == {
        "base", "eval-base", "init", "eval-init", "rl", "sft", "eval-sft"}
    markdown = paths["markdown"].read_text()
    init = json.loads((out / "eval" / "init" / "results.json").read_text())
    assert f"| SFT init | {_pct(init['gp-l'])} | {_pct(init['gp-l/rule-ood'])} |" in markdown
    rl_evals = [json.loads(line) for line in (out / "rl" / "log.jsonl").read_text().splitlines()
                if json.loads(line)["kind"] == "eval"]
    points = result["results"]["branches"]["rl"]
    assert [p["step"] for p in points] == [e["step"] for e in rl_evals] == [1, 2]
    assert points[-1]["eval"]["gp-l/rule-ood"]["success_rate"] == rl_evals[-1]["eval/gp-l/rule-ood/success_rate"]
    sft_dirs = sorted((out / "eval" / "sft").iterdir())
    last_sft = json.loads((sft_dirs[-1] / "results.json").read_text())
    assert result["results"]["branches"]["sft"][-1]["eval"] == last_sft
    assert "## What the numbers show" in markdown and any("RL vs SFT" in line for line in lines)
    assert "data:image/png;base64," in paths["html"].read_text()
    assert "environment options over its preset's: num_cards=3" in markdown


def test_env_options_reach_every_stage_and_no_evaluation_hand_is_a_training_episode(study):
    out, result, _ = study
    import datasets

    def hands(path):
        return [json.loads(line) for line in path.read_text().splitlines()]

    evaluated = [e for d in ("base", "init") for e in hands(out / "eval" / d / "trajectories" / "gp-l.jsonl")]
    evaluated += hands(next((out / "rl" / "eval").glob("step-*")) / "trajectories" / "gp-l__rule-ood.jsonl")
    evaluated += hands(next((out / "eval" / "sft").iterdir()) / "trajectories" / "gp-l.jsonl")
    assert all(len(e["start"]["cards"]) == 3 for e in evaluated)
    training = [row for name in ("init", "sft") for row in datasets.load_from_disk(str(out / name / "data"))]
    assert all(len(json.loads(row["messages"][-1]["content"])["cards"]) == 3 for row in training)
    assert not {row["seed"] for row in training} & {e["seed"] for e in evaluated}
    rollouts = json.loads((out / "rl" / "config.yaml").read_text().split("data_seed:")[1].split()[0])
    assert rollouts == pipeline.RL_DATA_SEED and all(e["seed"] < pipeline.INIT_DATA_SEED for e in evaluated)


def test_branches_meet_at_matched_compute(study):
    _, result, _ = study
    results = result["results"]
    sft, rl = results["branches"]["sft"], results["branches"]["rl"]
    assert results["init"]["flops"] < sft[0]["flops"] < sft[-1]["flops"]
    assert results["init"]["flops"] < rl[0]["flops"] < rl[-1]["flops"]
    assert abs(sft[-1]["flops"] - rl[-1]["flops"]) < 0.25 * (rl[-1]["flops"] - results["init"]["flops"])


def test_an_interrupted_study_resumes_and_gives_the_same_results(study, tmp_path, monkeypatch):
    _, whole, _ = study

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_rl_run", killed)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_study(_tiny(tmp_path), log=lambda line: None)
    monkeypatch.undo()
    lines = []
    resumed = pipeline.run_study(_tiny(tmp_path), log=lines.append)
    skipped = {line.split()[1].rstrip(":") for line in lines if "done before, skipped" in line}
    assert skipped == {"base", "eval-base", "init", "eval-init"}
    assert {k: resumed["results"][k] for k in STABLE} == {k: whole["results"][k] for k in STABLE}
    again = []
    pipeline.run_study(_tiny(tmp_path), log=again.append)
    assert sum("done before, skipped" in line for line in again) == 7


def test_bad_settings_are_one_clear_line(tmp_path, capsys):
    assert main(["study", "--preset", "gp-l", "--output-dir", str(tmp_path / "a")]) == 2
    assert "give --model" in capsys.readouterr().err
    config = tmp_path / "study.yaml"
    config.write_text("rl: {stepz: 3}\n")
    assert main(["study", "--preset", "tiny", "--config", str(config), "--output-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "in `rl`: unknown config key 'stepz'; did you mean 'steps'?" in err and len(err.strip().splitlines()) == 1
    from shiftlab.cli import build_parser

    args = build_parser().parse_args(["study", "--preset", "quickstart", "--rl", "{steps: 20}", "--env", "{target: 12}"])
    config = _config(StudyConfig, args, defaults=preset_values("quickstart"))
    quickstart = preset_values("quickstart")
    assert config.rl == {**quickstart["rl"], "steps": 20} and config.env == {**quickstart["env"], "target": 12}
    with pytest.raises(ConfigError, match="set by the study"):
        load_config(StudyConfig, overrides={"sft": {"max_steps": 3}})


def test_a_damaged_stage_record_runs_that_stage_again(study, tmp_path):
    import shutil

    out, whole, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "stages" / "eval-init.json").write_text('{"cut short')
    (copy / "stages" / "rl.json").write_text("[]")
    (copy / "stages" / "base.json").write_text('{"seconds": 1, "model": 5}')
    lines = []
    again = pipeline.run_study(_tiny(copy), log=lines.append)
    redone = {line.split()[1] for line in lines if line.endswith("...")}
    assert redone == {"base", "eval-init", "rl"}
    assert {k: again["results"][k] for k in STABLE} == {k: whole["results"][k] for k in STABLE}


def test_a_preset_named_in_the_config_file_applies_its_settings(tmp_path):
    from shiftlab.cli import _study_preset, build_parser

    config = tmp_path / "study.yaml"
    config.write_text("preset: tiny\neval_episodes: 4\n")
    args = build_parser().parse_args(["study", "--config", str(config)])
    assert _study_preset(args) == "tiny"
    settings = _config(StudyConfig, args, defaults=preset_values("tiny"))
    assert settings.build_size == "tiny" and settings.eval_episodes == 4
    assert _study_preset(build_parser().parse_args(["study", "--preset", "quickstart", "--config", str(config)])) \
        == "quickstart"
