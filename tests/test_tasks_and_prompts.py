"""Task presets, prompt styles, and whole episodes through them."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.play import message_text, play_episode
from shiftlab.task import (
    TaskPreset,
    check_env_options,
    get_preset,
    get_task,
    list_presets,
    ood_presets,
    register_task,
)
from shiftlab.tasks.general_points import expert_answer, verify
from shiftlab.tasks.general_points.cards import FACE_RANKS, rank_value
from shiftlab.tasks.general_points.expert import random_answer

GP_PRESETS = ["gp-l", "gp-l/rule-ood", "gp-vl", "gp-vl/rule-ood", "gp-vl/visual-ood"]


def expert(messages, info):
    return expert_answer(info)


def test_the_papers_presets_exist_with_their_meaning():
    names = [p.name for p in list_presets()]
    assert all(name in names for name in GP_PRESETS)
    assert get_preset("gp-l").env_kwargs["observation"] == "text"
    assert get_preset("gp-l/rule-ood").env_kwargs["face_cards_as_ten"] is False
    vl = get_preset("gp-vl").env_kwargs
    assert vl["observation"] == "image" and vl["suit_color"] == "black" and vl["face_cards_as_ten"]
    visual = get_preset("gp-vl/visual-ood").env_kwargs
    assert visual["suit_color"] == "red" and visual["face_cards_as_ten"] and visual["observation"] == "image"
    assert get_preset("gp-vl/rule-ood").env_kwargs["suit_color"] == "black"
    assert [p.shift for p in map(get_preset, GP_PRESETS)] == ["id", "rule", "id", "rule", "visual"]


def test_groups_and_ood_variants():
    assert get_preset("gp-vl/visual-ood").group == "gp-vl"
    assert {p.name for p in ood_presets("gp-vl")} == {"gp-vl/rule-ood", "gp-vl/visual-ood"}
    assert {p.name for p in ood_presets("gp-l/rule-ood")} == {"gp-l/rule-ood"}
    assert get_preset("gp-vl").owner is get_task("general-points") is get_preset("gp-l").owner


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="gp-l/rule-ood"):
        get_preset("gp-x")
    with pytest.raises(KeyError, match="example"):
        get_task("general-points").prompt("nope")
    with pytest.raises(KeyError, match="general-points"):
        get_task("cards")


def test_presets_are_immutable_and_unique():
    preset = get_preset("gp-l")
    with pytest.raises(TypeError):
        preset.env_kwargs["observation"] = "image"
    with pytest.raises(ValueError, match="already registered"):
        register_task(get_task("general-points"))
    with pytest.raises(ValueError, match="shift"):
        TaskPreset("x", "general-points", {}, "side ways", "")


@pytest.mark.parametrize("name", GP_PRESETS)
def test_every_preset_runs_an_expert_episode_solved_in_one_turn(name):
    preset = get_preset(name)
    for seed in range(5):
        episode = play_episode(preset, seed, expert, resolution=160)
        assert episode.success and len(episode.turns) == 1 and episode.total_reward == 5.0
        assert episode.image.shape == (160, 160, 3)
        if preset.env_kwargs["face_cards_as_ten"] is False:
            assert any(card in FACE_RANKS for card in episode.info["cards"])


def test_make_env_overrides_preset_options():
    env = get_preset("gp-vl").make_env(resolution=64)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3)


def test_env_options_must_fit_every_task_and_keep_its_shift():
    check_env_options(["gp-l", "gp-l/rule-ood"], {"num_cards": 3, "target": 12})
    with pytest.raises(ValueError, match="'face_cards_as_ten' is set by task 'gp-l'"):
        check_env_options(["gp-l", "gp-l/rule-ood"], {"face_cards_as_ten": False})
    with pytest.raises(ValueError, match="do not fit task 'gp-l'.*num_cards"):
        check_env_options(["gp-l"], {"num_cards": 0})
    with pytest.raises(ValueError, match="unknown environment option 'no_such_option' for task 'gp-l'; options: .*target"):
        check_env_options(["gp-l"], {"no_such_option": 1})
    with pytest.raises(ValueError, match="no solvable hand"):  # only dealing shows it
        check_env_options(["gp-l"], {"target": 99_999})


def test_text_prompt_states_task_rule_target_cards_and_keys():
    env = get_preset("gp-l/rule-ood").make_env()
    obs, info = env.reset(seed=3)
    (message,) = get_preset("gp-l/rule-ood").make_prompt().first_turn(obs, info)
    text = message["content"]
    assert message["role"] == "user" and isinstance(text, str)
    assert "11, 12 and 13" in text and "24" in text
    assert f"Cards: {', '.join(info['cards'])}" in text
    for key in ('"cards"', '"number"', '"formula"'):
        assert key in text


def test_image_prompt_attaches_the_image_first_and_omits_the_cards():
    env = get_preset("gp-vl").make_env(resolution=64)
    obs, info = env.reset(seed=3)
    (message,) = get_preset("gp-vl").make_prompt().first_turn(obs, info)
    image_part, text_part = message["content"]
    assert image_part["type"] == "image" and np.array_equal(image_part["image"], obs)
    assert "image" in text_part["text"] and "count as 10" in text_part["text"]
    assert "Cards:" not in text_part["text"]


def test_revision_turn_carries_the_answer_and_the_feedback():
    preset = get_preset("gp-l")
    env = preset.make_env()
    prompt = preset.make_prompt()
    obs, info = env.reset(seed=0)
    messages = prompt.first_turn(obs, info)
    obs, _, _, _, info = env.step('{"formula": "1+1"}')
    nxt = prompt.next_turn(messages, '{"formula": "1+1"}', obs, info)
    assert nxt[: len(messages)] == messages
    assert nxt[-2] == {"role": "assistant", "content": '{"formula": "1+1"}'}
    assert nxt[-1]["role"] == "user" and info["feedback"] in nxt[-1]["content"]


def test_example_style_shows_a_correct_example_under_the_active_rule():
    for name in ["gp-l", "gp-l/rule-ood"]:
        env = get_preset(name).make_env()
        obs, info = env.reset(seed=0)
        text = get_task("general-points").prompt("example").first_turn(obs, info)[0]["content"]
        example = text.split("Example answer for the cards ")[1].split("\n")[1]
        cards = [c.strip() for c in text.split("Example answer for the cards ")[1].split(":")[0].split(",")]
        values = [rank_value(c, info["face_cards_as_ten"]) for c in cards]
        assert verify(example, values, 24).success


def test_random_policy_episode_revises_with_feedback_until_out_of_attempts():
    rng = np.random.default_rng(0)
    preset = get_preset("gp-l")
    episodes = [play_episode(preset, seed, lambda m, i: random_answer(i, rng)) for seed in range(20)]
    failed = [e for e in episodes if not e.success]
    assert failed, "a random policy should fail some hands"
    for episode in failed:
        assert len(episode.turns) == 5
        last = episode.turns[-1].messages
        assert len(last) == 1 + 2 * 4
        assert episode.turns[3].feedback in message_text(last[-1])
