"""`shiftlab study` end to end on the `tiny` preset: every stage runs, the report's numbers are the
evaluations' numbers, the branches meet at matched compute, and an interrupted study resumes without
redoing finished stages and gives the same results."""

import csv
import json

import pytest

pytest.importorskip("trl")

from shiftlab.cli import _config, main  # noqa: E402
from shiftlab.statistics import wilson_interval  # noqa: E402
from shiftlab.study import pipeline  # noqa: E402
from shiftlab.study.config import StudyConfig, preset_values  # noqa: E402
from shiftlab.training.config import ConfigError, load_config  # noqa: E402

STABLE = ("preset", "task", "eval_tasks", "shifts", "metric", "base", "init", "branches", "training_seeds",
          "seed_ranges", "leakage")
STAGES = {"base", "eval-base", "init", "eval-init", "leakage",
          *(f"{kind}-seed{s}" for kind in ("rl", "sft", "eval-sft") for s in (0, 1))}


def _tiny(out, cache):
    return load_config(StudyConfig, overrides={**preset_values("tiny"), "output_dir": str(out), "cache_dir": str(cache)})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def study(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("study")
    lines = []
    return out, pipeline.run_study(_tiny(out, cache), log=lines.append), lines


def _cell(metrics):
    low, high = wilson_interval(sum(metrics["episode_success"]), metrics["episodes"])
    return f"{100 * metrics['success_rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def test_every_stage_runs_and_the_report_holds_the_evaluations_numbers(study):
    out, result, lines = study
    paths = result["paths"]
    for key in ("markdown", "html", "json", "csv"):
        assert paths[key].is_file()
    assert {p.name for p in paths["plots"]} == {"sft.png", "rl.png"}
    assert {p.stem for p in (out / "stages").glob("*.json")} == STAGES
    markdown = paths["markdown"].read_text()
    init = json.loads((out / "eval" / "init" / "results.json").read_text())
    assert f"| SFT init | {_cell(init['gp-l'])} | {_cell(init['gp-l/rule-ood'])} |" in markdown
    results = result["results"]
    assert results["training_seeds"] == [0, 1] and set(results["branches"]["rl"]) == {"0", "1"}
    for seed in (0, 1):
        rl_evals = [json.loads(line) for line in (out / "rl" / f"seed-{seed}" / "log.jsonl").read_text().splitlines()
                    if json.loads(line)["kind"] == "eval"]
        points = results["branches"]["rl"][str(seed)]
        assert [p["step"] for p in points] == [e["step"] for e in rl_evals] == [1, 2]
        assert points[-1]["eval"]["gp-l/rule-ood"]["success_rate"] == rl_evals[-1]["eval/gp-l/rule-ood/success_rate"]
        sft_dirs = sorted((out / "eval" / "sft" / f"seed-{seed}").iterdir())
        last_sft = json.loads((sft_dirs[-1] / "results.json").read_text())
        assert results["branches"]["sft"][str(seed)][-1]["eval"] == last_sft
    # The two seeds are two runs: their RL rollouts differ.
    logs = [(out / "rl" / f"seed-{s}" / "log.jsonl").read_text() for s in (0, 1)]
    assert logs[0] != logs[1]
    assert "## What the numbers show" in markdown and any("paired permutation test p =" in line for line in lines)
    assert "data:image/png;base64," in paths["html"].read_text()
    assert "environment options over its preset's: num_cards=3" in markdown


def test_the_csv_is_tidy_and_holds_every_seed_and_checkpoint(study):
    _, result, _ = study
    with open(result["paths"]["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["branch", "seed", "step", "flops", "task", "metric", "value", "n"]
    success = [r for r in rows if r["metric"] == "success_rate"]
    keys = {(r["branch"], r["seed"], r["step"], r["task"]) for r in success}
    for branch in ("sft", "rl"):
        for seed, points in result["results"]["branches"][branch].items():
            for p in points:
                for task in ("gp-l", "gp-l/rule-ood"):
                    assert (branch, seed, str(p["step"]), task) in keys
                    row = next(r for r in success if (r["branch"], r["seed"], r["step"], r["task"]) ==
                               (branch, seed, str(p["step"]), task))
                    assert float(row["value"]) == pytest.approx(p["eval"][task]["success_rate"])
                    assert int(row["n"]) == 8
    assert {r["branch"] for r in success} == {"base", "init", "sft", "rl"}


def test_no_ood_evaluation_episode_occurs_in_pretraining_sft_or_rl_data(study):
    """By identity (task, environment options, env seed), reconstructed from what each stage wrote, and
    by what the model reads (the study's own check, recorded in the results)."""
    out, result, _ = study
    import datasets

    from shiftlab.task import get_preset

    def options(task, overrides, evaluation):
        """Every option of the environment (its defaults included), as one comparable string."""
        preset = get_preset(task)
        return json.dumps(preset.owner.resolved_options(task, overrides, evaluation), sort_keys=True)

    env = {"num_cards": 3}
    evaluated = set()
    for task in ("gp-l/rule-ood",):
        for line in (out / "eval" / "init" / "trajectories" / "gp-l__rule-ood.jsonl").read_text().splitlines():
            evaluated.add((task, options(task, env, True), json.loads(line)["seed"]))
    assert len(evaluated) == 8
    training = set()
    pretraining = result["results"]["pretraining"]
    data = [pretraining["mixture"], out / "init" / "data", *(out / "sft" / f"seed-{s}" / "data" for s in (0, 1))]
    key = ("task", "env", "seed", "episode", "point")
    mixture = {tuple(row[k] for k in key) for row in datasets.load_from_disk(pretraining["mixture"])}
    init_rows = [tuple(row[k] for k in key) for row in datasets.load_from_disk(str(out / "init" / "data"))]
    assert sum(row in mixture for row in init_rows) == 21  # the tiny init's replay share: a quarter of 85 rows
    for path in data:
        for row in datasets.load_from_disk(str(path)):
            if row["task"] != "support":
                # SFT rows record the options they were made with; the study's env holds for the branches.
                overrides = json.loads(row["env"])
                training.add((row["task"], options(row["task"], overrides, False), row["seed"]))
    for seed in (0, 1):
        config = (out / "rl" / f"seed-{seed}" / "config.yaml").read_text()
        first = int(config.split("data_seed:")[1].split()[0])
        assert first == pipeline.data_seed(pipeline.RL_DATA_SEED, seed)
        drawn = json.loads((out / "stages" / f"rl-seed{seed}.json").read_text())["episodes_drawn"]
        training |= {("gp-l", options("gp-l", env, False), first + k) for k in range(drawn)}
    assert len(training) > 100
    # The rule shift poses J/Q/K as 11/12/13, 24, three cards: the base meets that rule only with other
    # targets or hand sizes.
    problems = {(o["face_cards_as_ten"], o["target"], o["num_cards"]) for o in (json.loads(o) for _, o, _ in training)}
    assert (False, 24, 3) not in problems and {(False, 24, 4), (False, 18, 3), (True, 24, 3)} <= problems
    assert not evaluated & training
    assert not {s for _, _, s in evaluated} & {s for _, _, s in training}
    assert result["results"]["leakage"]["gp-l/rule-ood"] == {"episodes": 8, "found_in_training": 0}
    assert any("face_cards_as_ten=False" in line for line in pretraining["held_out"])


def test_the_studys_prompt_style_reaches_every_stage(study):
    """The tiny preset names the compact style once; the base's mixture, the SFT data, the RL rollouts
    and every evaluation are written in it."""
    out, result, _ = study
    import datasets

    def compact(text):
        return text.startswith("Make ") and "\nJSON keys: cards, number, formula.\n" in text

    mixture = result["results"]["pretraining"]["mixture"]
    for path in (mixture, out / "init" / "data", out / "sft" / "seed-0" / "data"):
        firsts = [row["messages"][0]["content"] for row in datasets.load_from_disk(str(path))
                  if row["task"] != "support"]
        assert firsts and all(compact(text) for text in firsts), path
    evaluations = [out / "eval" / "init" / "trajectories" / "gp-l.jsonl",
                   *sorted((out / "rl" / "seed-0").rglob("gp-l.jsonl"))]
    assert len(evaluations) >= 2
    for path in evaluations:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records and all(compact(r["turns"][0]["messages"][0]["content"]) for r in records), path
    assert "prompt: compact" in (out / "rl" / "seed-0" / "config.yaml").read_text()
    assert result["results"]["pretraining"]["hash"] in str(mixture)


def test_branches_meet_at_matched_compute(study):
    _, result, _ = study
    results = result["results"]
    for seed in ("0", "1"):
        sft, rl = results["branches"]["sft"][seed], results["branches"]["rl"][seed]
        assert results["init"]["flops"] < sft[0]["flops"] < sft[-1]["flops"]
        assert results["init"]["flops"] < rl[0]["flops"] < rl[-1]["flops"]
        assert abs(sft[-1]["flops"] - rl[-1]["flops"]) < 0.25 * (rl[-1]["flops"] - results["init"]["flops"])


def test_an_interrupted_study_resumes_and_gives_the_same_results(study, cache, tmp_path):
    """A study killed during its second seed's RL branch (its later stages unfinished, the RL run's final
    model not yet written) resumes from there: the finished stages are skipped, and the results are
    those of the uninterrupted study."""
    import shutil

    out, whole, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for name in ("rl-seed1", "sft-seed1", "eval-sft-seed1", "leakage"):
        (copy / "stages" / f"{name}.json").unlink()
    for path in ("rl/seed-1/final", "sft/seed-1", "eval/sft/seed-1", "report"):
        shutil.rmtree(copy / path)
    lines = []
    resumed = pipeline.run_study(_tiny(copy, cache), log=lines.append)
    skipped = {line.split()[1].rstrip(":") for line in lines if "done before, skipped" in line}
    assert skipped == STAGES - {"rl-seed1", "sft-seed1", "eval-sft-seed1", "leakage"}
    assert {k: resumed["results"][k] for k in STABLE} == {k: whole["results"][k] for k in STABLE}
    again = []
    pipeline.run_study(_tiny(copy, cache), log=again.append)
    assert sum("done before, skipped" in line for line in again) == len(STAGES)


def test_a_pretrained_base_is_cached_by_its_plan_and_reused(study, cache):
    """The study's base came from the cache directory; the same plan finds it there without training,
    and any change to the plan (here: what is held out) trains another."""
    from shiftlab.training.pretrain import PretrainConfig, cached_pretrain

    _, whole, _ = study
    seen = whole["results"]["pretraining"]
    assert not seen["reused"] and seen["cache"].startswith(str(cache))
    settings = {**preset_values("tiny")["pretrain"], "kind": "lm", "size": "tiny", "seed": 0, "output_dir": "unused",
                "prompt": preset_values("tiny")["prompt"],
                "held_out": [{"task": "gp-l/rule-ood", "env": {"num_cards": 3}}]}
    again = cached_pretrain(load_config(PretrainConfig, overrides=settings), str(cache))
    assert again["reused"] and again["hash"] == seen["hash"] and again["model"] == whole["results"]["model"]
    other = cached_pretrain(load_config(PretrainConfig, overrides={**settings, "held_out": []}), str(cache))
    assert not other["reused"] and other["hash"] != seen["hash"]


def test_bad_settings_are_one_clear_line(tmp_path, capsys):
    assert main(["study", "--preset", "gp-l", "--output-dir", str(tmp_path / "a")]) == 2
    assert "give --model" in capsys.readouterr().err
    config = tmp_path / "study.yaml"
    config.write_text("rl: {stepz: 3}\n")
    assert main(["study", "--preset", "tiny", "--config", str(config), "--output-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "in `rl`: unknown config key 'stepz'; did you mean 'steps'?" in err and len(err.strip().splitlines()) == 1
    from shiftlab.cli import build_parser

    args = build_parser().parse_args(["study", "--preset", "quickstart-gp-l", "--rl", "{steps: 20}", "--env",
                                      "{target: 12}"])
    config = _config(StudyConfig, args, defaults=preset_values("quickstart-gp-l"))
    quickstart = preset_values("quickstart-gp-l")
    assert config.rl == {**quickstart["rl"], "steps": 20} and config.env == {**quickstart["env"], "target": 12}
    with pytest.raises(ConfigError, match="set by the study"):
        load_config(StudyConfig, overrides={"sft": {"max_steps": 3}})
    with pytest.raises(ConfigError, match="init.replay is set by the study"):
        load_config(StudyConfig, overrides={**preset_values("tiny"), "init": {"replay": "x", "replay_share": 0.2}})
    with pytest.raises(ConfigError, match="replays the base's pretraining mixture"):
        load_config(StudyConfig, overrides={"init": {"replay_share": 0.2}})
    for seeds in ([], [0, 0], [-1], ["a"]):
        with pytest.raises(ConfigError, match="seeds"):
            load_config(StudyConfig, overrides={"seeds": seeds}).validate()
    assert main(["study", "--preset", "tiny", "--pretrain", "{tasks: [cards]}", "--output-dir", str(tmp_path / "c")]) == 2
    assert "unknown task 'cards'" in capsys.readouterr().err


def test_a_damaged_stage_record_runs_that_stage_again(study, cache, tmp_path):
    import shutil

    out, whole, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "stages" / "eval-init.json").write_text('{"cut short')
    (copy / "stages" / "rl-seed1.json").write_text("[]")
    (copy / "stages" / "base.json").write_text('{"seconds": 1, "model": 5}')
    lines = []
    again = pipeline.run_study(_tiny(copy, cache), log=lines.append)
    redone = {line.split()[1] for line in lines if line.endswith("...")}
    assert redone == {"base", "eval-init", "rl-seed1"}
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


def test_every_named_preset_is_a_valid_config():
    """A preset that needs a real checkpoint is valid once one is named; the suites name only presets."""
    from shiftlab.study.config import PAPER_PRESETS, PRESETS, SUITES

    for name in PRESETS:
        model = {"model": "models/any"} if name in PAPER_PRESETS else {}
        load_config(StudyConfig, overrides={**preset_values(name), **model})
    assert all(member in PRESETS for members in SUITES.values() for member in members)
    assert {"smollm2-gp-l", "smollm2-virl-l", "smollm2-smoke-gp-l", "smollm2-smoke-virl-l"} <= set(PAPER_PRESETS)
