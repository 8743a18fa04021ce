"""Prompt styles as a setting: the compact style states each task in fewer tokens, and a style named
once reaches every stage that writes a prompt (rollouts, evaluation, expert data, pretraining)."""

from __future__ import annotations

import json

import pytest

from shiftlab.evaluation import EvaluationError, evaluate
from shiftlab.messages import text_of
from shiftlab.policies.oracle import ExpertPolicy
from shiftlab.rollout import run_episodes
from shiftlab.task import Source, check_prompt_style, get_preset, get_task
from shiftlab.training.config import ConfigError, load_config
from shiftlab.training.pretrain import PretrainConfig, mixture, pretraining_plan

TEXT_PRESETS = ["gp-l", "gp-l/rule-ood", "virl-l", "virl-l/rule-ood"]
FAST = {"gp-l": {}, "gp-l/rule-ood": {}, "gp-vl": {"resolution": 64}, "virl-l": {}, "virl-l/rule-ood": {}}


def _first_text(name, style, seed=3, **options):
    preset = get_preset(name)
    env = preset.make_env(**{**FAST.get(name, {}), **options})
    obs, info = env.reset(seed=seed, options=preset.owner.reset_options(env, 0))
    return text_of(preset.make_prompt(style).first_turn(obs, info)[0]["content"]), info


@pytest.mark.parametrize("name", TEXT_PRESETS)
def test_the_compact_style_is_the_same_task_in_fewer_words(name):
    default, info = _first_text(name, None)
    compact, _ = _first_text(name, "compact")
    assert len(compact) < (0.5 if name.startswith("gp") else 0.8) * len(default)
    if name.startswith("gp"):
        values = "J=Q=K=10" if info["face_cards_as_ten"] else "J=11, Q=12, K=13"
        assert values in compact and f"Make {info['target']}" in compact
        assert compact.endswith(f"Cards: {', '.join(info['cards'])}")
        assert "cards, number, formula" in compact
    else:
        assert info["instruction"].strip() in compact and info["observation_history"].rstrip("\n") in compact
        for action in info["action_space"]:
            assert action.split("(")[0] in compact
        if "turn_direction(left)" in info["action_space"]:
            assert "x in left, right" in compact or "left" in compact.split("Actions:")[1]
        assert '"current observation", "current instruction", "action"' in compact


def test_the_compact_image_prompt_names_no_cards():
    text, info = _first_text("gp-vl", "compact")
    assert "The image shows 4 cards." in text and "Cards:" not in text


@pytest.mark.parametrize("name", TEXT_PRESETS)
def test_the_expert_solves_every_episode_in_the_compact_style_and_revisions_carry_feedback(name):
    episodes = run_episodes(get_preset(name), ExpertPolicy(), range(6), prompt="compact")
    assert all(e.success for e in episodes)
    assert all(text_of(e.turns[0].messages[0]["content"]).startswith(("Make", "Route:")) for e in episodes)
    preset = get_preset(name)
    env = preset.make_env()
    obs, info = env.reset(seed=0, options=preset.owner.reset_options(env, 0))
    style = preset.make_prompt("compact")
    messages = style.first_turn(obs, info)
    obs, _, _, _, info = env.step("not an answer")
    revised = style.next_turn(messages, "not an answer", obs, info)
    assert revised[:-1] == [*messages, {"role": "assistant", "content": "not an answer"}]
    assert revised[-1]["content"].startswith("Rejected.") and info["feedback"] in revised[-1]["content"]


def test_evaluation_plays_the_named_style_records_it_and_refuses_another_on_resume(tmp_path):
    results = evaluate(["gp-l"], ExpertPolicy(), 3, tmp_path, prompt="compact")
    assert results["gp-l"]["success_rate"] == 1.0
    record = json.loads((tmp_path / "trajectories" / "gp-l.jsonl").read_text().splitlines()[0])
    assert record["turns"][0]["messages"][0]["content"].startswith("Make 24")
    assert json.loads((tmp_path / "run.json").read_text())["prompt"] == "compact"
    with pytest.raises(EvaluationError):
        evaluate(["gp-l"], ExpertPolicy(), 3, tmp_path)
    with pytest.raises(EvaluationError, match="no prompt style 'terse'; styles: default, example, compact"):
        evaluate(["gp-l"], ExpertPolicy(), 3, tmp_path / "other", prompt="terse")
    # Without a style the run records none, so evaluations made before the setting existed still resume.
    evaluate(["gp-l"], ExpertPolicy(), 2, tmp_path / "plain")
    assert "prompt" not in json.loads((tmp_path / "plain" / "run.json").read_text())


def test_unknown_styles_are_refused_where_they_are_named():
    with pytest.raises(ValueError, match="has no prompt style"):
        check_prompt_style(["gp-l", "clock"], "compact")
    check_prompt_style(["gp-l", "virl-l", "clock"], None)
    with pytest.raises(KeyError, match="unknown prompt style 'terse'"):
        Source("gp-l", 4, prompt="terse")
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.sft import SFTRunConfig

    with pytest.raises(ConfigError, match="config key 'prompt'"):
        load_config(SFTRunConfig, overrides={"model": "m", "tasks": ["clock"], "prompt": "compact"})
    with pytest.raises(ConfigError, match="'prompt' applies to expert data made from `tasks`"):
        load_config(SFTRunConfig, overrides={"model": "m", "data": "d", "prompt": "compact"})
    with pytest.raises(ConfigError, match="config key 'prompt'"):
        load_config(RLConfig, overrides={"model": "m", "task": "gp-l", "prompt": "terse"})
    with pytest.raises(ConfigError, match="no task of the mixture has the prompt style 'terse'"):
        load_config(PretrainConfig, overrides={"output_dir": "o", "prompt": "terse"})
    from shiftlab.study.config import StudyConfig

    with pytest.raises(ConfigError, match="config key 'prompt'"):
        load_config(StudyConfig, overrides={"task": "gp-l", "prompt": "terse"})
    with pytest.raises(ConfigError, match="pretrain.prompt is set by the study"):
        load_config(StudyConfig, overrides={"pretrain": {"prompt": "compact"}})
    with pytest.raises(ConfigError, match="rl.prompt is set by the study"):
        load_config(StudyConfig, overrides={"rl": {"prompt": "compact"}})


def test_a_pretraining_style_reaches_every_source_that_has_it_and_changes_the_plan():
    plain = pretraining_plan(PretrainConfig(output_dir="o", episodes=4, tasks=["general-points", "clock"]))
    # A plan without a style is written as before the setting existed, so cached bases keep their hash.
    assert "prompt" not in plain["settings"] and all("prompt" not in s for s in plain["sources"])
    compact = pretraining_plan(PretrainConfig(output_dir="o", episodes=4, tasks=["general-points", "clock"],
                                              prompt="compact"))
    assert compact["settings"]["prompt"] == "compact"
    by_task = {get_preset(s["task"]).task: s.get("prompt") for s in compact["sources"]}
    assert by_task == {"general-points": "compact", "clock": None}  # the clock has no compact style
    sources = mixture(episodes=2, tasks=["general-points"], prompt="compact")
    rows = run_episodes(get_preset(sources[0].task), ExpertPolicy(), range(2), prompt=sources[0].prompt,
                        **sources[0].env)
    assert text_of(rows[0].turns[0].messages[0]["content"]).startswith("Make")


def test_a_tokenizer_corpus_in_a_style_holds_that_style():
    from shiftlab.training.base_model import task_corpus

    corpus = task_corpus(episodes_per_task=2, tasks=["general-points", "clock"], prompt="compact")
    assert any("JSON keys: cards, number, formula." in text for text in corpus)
    assert not any("Reply with a JSON object with three keys" in text for text in corpus
                   if "playing cards" in text)
    assert any(text.startswith("user:") and "clock" in text.lower() for text in corpus)


def test_the_cli_takes_a_style_and_lists_them(tmp_path, capsys):
    from shiftlab.cli import main

    assert main(["eval", "--tasks", "gp-l", "--episodes", "2", "--prompt", "compact", "--quiet",
                 "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "run.json").read_text())["prompt"] == "compact"
    assert main(["eval", "--tasks", "gp-l,clock", "--prompt", "compact", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "task 'clock' has no prompt style 'compact'" in err
    assert main(["play", "--task", "virl-l", "--prompt", "compact", "--out", str(tmp_path / "p")]) == 0
    assert "Route:" in capsys.readouterr().out
    assert get_task("virl").prompt("compact").compact
