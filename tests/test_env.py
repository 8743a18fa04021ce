"""The GeneralPoints environment: gymnasium contract, seeding, variants, episodes."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

from shiftlab.tasks.general_points import (
    GeneralPointsEnv,
    RewardTable,
    expert_answer,
    format_answer,
    solutions,
)
from shiftlab.tasks.general_points.cards import BLACK_SUITS, FACE_RANKS, RANKS, RED_SUITS, rank_value
from shiftlab.tasks.general_points.render import BLACK_INK, RED_INK, card_boxes, suit_probe


@pytest.mark.parametrize("observation", ["text", "image"])
def test_check_env_passes_without_warnings(observation):
    env = GeneralPointsEnv(observation=observation, resolution=128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_registered_with_gymnasium():
    env = gym.make("shiftlab/GeneralPoints-v0", observation="image", resolution=96)
    obs, info = env.reset(seed=0)
    assert obs.shape == (96, 96, 3) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)


def test_same_seed_same_hand_different_seeds_differ():
    a, b = GeneralPointsEnv(), GeneralPointsEnv()
    hands = []
    for seed in range(50):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert obs_a == obs_b and info_a == info_b
        hands.append(tuple(info_a["cards"]) + tuple(info_a["suits"]))
    assert len(set(hands)) > 45


def test_unseeded_resets_continue_the_seeded_stream():
    a, b = GeneralPointsEnv(), GeneralPointsEnv()
    a.reset(seed=7)
    b.reset(seed=7)
    assert [a.reset()[1]["cards"] for _ in range(20)] == [b.reset()[1]["cards"] for _ in range(20)]


def test_no_global_random_state_is_used():
    import random

    env = GeneralPointsEnv()
    env.reset(seed=3)
    first = [env.reset()[1]["cards"] for _ in range(10)]
    random.seed(12345)
    np.random.seed(12345)
    env.reset(seed=3)
    assert [env.reset()[1]["cards"] for _ in range(10)] == first


def test_info_describes_the_hand():
    env = GeneralPointsEnv(max_attempts=3)
    obs, info = env.reset(seed=11)
    assert obs == ", ".join(info["cards"])
    assert all(c in RANKS for c in info["cards"]) and len(info["cards"]) == 4
    assert info["values"] == [rank_value(c, True) for c in info["cards"]]
    assert info["num_solutions"] == len(solutions(info["values"])) > 0
    assert info["attempts_left"] == 3 and info["target"] == 24
    assert "feedback" not in info


@pytest.mark.parametrize("face_cards_as_ten", [True, False])
def test_every_dealt_hand_is_solvable_under_its_rule(face_cards_as_ten):
    env = GeneralPointsEnv(face_cards_as_ten=face_cards_as_ten, target=24)
    for seed in range(300):
        _, info = env.reset(seed=seed)
        assert info["num_solutions"] > 0
        assert solutions(info["values"], 24)


def test_rule_shift_deals_a_face_card_and_values_it_11_to_13():
    env = GeneralPointsEnv(face_cards_as_ten=False)
    seen_faces = set()
    for seed in range(300):
        _, info = env.reset(seed=seed)
        faces = [c for c in info["cards"] if c in FACE_RANKS]
        assert faces, info["cards"]
        seen_faces.update(faces)
        for card, value in zip(info["cards"], info["values"], strict=True):
            assert value == RANKS.index(card) + 1
    assert seen_faces == set(FACE_RANKS)


def test_training_rule_values_face_cards_as_ten_and_deals_all_ranks():
    env = GeneralPointsEnv(face_cards_as_ten=True)
    ranks = set()
    for seed in range(400):
        _, info = env.reset(seed=seed)
        ranks.update(info["cards"])
        for card, value in zip(info["cards"], info["values"], strict=True):
            assert value == (10 if card in FACE_RANKS else RANKS.index(card) + 1)
    assert ranks == set(RANKS)


@pytest.mark.parametrize(("color", "allowed"), [("black", BLACK_SUITS), ("red", RED_SUITS), ("mixed", "SHDC")])
def test_suit_colour_variants(color, allowed):
    env = GeneralPointsEnv(suit_color=color)
    seen = set()
    for seed in range(200):
        seen.update(env.reset(seed=seed)[1]["suits"])
    assert seen == set(allowed)


@pytest.mark.parametrize(("color", "ink"), [("black", BLACK_INK), ("red", RED_INK)])
def test_image_observation_shows_each_card_in_its_colour(color, ink):
    env = GeneralPointsEnv(observation="image", suit_color=color, resolution=448)
    obs, info = env.reset(seed=5)
    for box in card_boxes(4, 448):
        x, y = suit_probe(box)
        assert np.abs(obs[y, x].astype(int) - ink).max() < 40


def test_image_observation_is_fresh_and_constant_within_an_episode():
    env = GeneralPointsEnv(observation="image", resolution=128)
    obs, info = env.reset(seed=1)
    obs[:] = 0
    obs2, *_ = env.step("no answer")
    assert obs2.any() and not np.shares_memory(obs, obs2)
    obs3, *_ = env.step("still none")
    assert np.array_equal(obs2, obs3)


def test_render_gives_the_table_in_text_mode_too():
    env = GeneralPointsEnv(observation="text", render_mode="rgb_array", resolution=200)
    env.reset(seed=0)
    assert env.render().shape == (200, 200, 3)
    assert GeneralPointsEnv().render() is None


def test_expert_solves_in_one_step():
    env = GeneralPointsEnv()
    for seed in range(100):
        _, info = env.reset(seed=seed)
        _, reward, terminated, truncated, info = env.step(expert_answer(info))
        assert (reward, terminated, truncated) == (5.0, True, False)
        assert info["success"] is True and info["outcome"] == "correct"
        assert info["attempts_left"] == 4


def test_episode_truncates_after_max_attempts_and_then_needs_reset():
    env = GeneralPointsEnv(max_attempts=3)
    _, info = env.reset(seed=2)
    rewards = []
    for attempt in range(3):
        _, reward, terminated, truncated, info = env.step('{"formula": "1+1"}')
        rewards.append(reward)
        assert not terminated
        assert truncated == (attempt == 2)
        assert info["feedback"]
    assert info["success"] is False and info["attempts_left"] == 0
    assert rewards == [-2.0] * 3
    with pytest.raises(ResetNeeded):
        env.step('{"formula": "1+1"}')
    env.reset(seed=2)
    env.step('{"formula": "1+1"}')  # a new episode accepts answers again


def test_step_before_reset_needs_reset():
    with pytest.raises(ResetNeeded):
        GeneralPointsEnv().step("x")


def test_correct_after_failures_ends_the_episode():
    env = GeneralPointsEnv()
    _, info = env.reset(seed=4)
    env.step("I am not sure.")
    _, reward, terminated, _, info = env.step(expert_answer(info))
    assert terminated and reward == 5.0 and info["attempts_left"] == 3


def test_image_mode_checks_card_recognition():
    env = GeneralPointsEnv(observation="image", resolution=96)
    _, info = env.reset(seed=9)
    misread = ["3" if card == "2" else "2" for card in info["cards"]]
    _, reward, _, _, step_info = env.step(format_answer(misread, info["values"], f"{env.solutions[0]}=24"))
    assert reward == -1.5 and step_info["outcome"] == "wrong_cards" and step_info["cards_correct"] is False
    _, reward, _, _, step_info = env.step(expert_answer(info))
    assert reward == 5.0 and step_info["cards_correct"] is True


def test_text_mode_ignores_the_cards_field():
    env = GeneralPointsEnv(observation="text")
    _, info = env.reset(seed=9)
    answer = expert_answer(info).replace('"cards": [', '"cards": ["Z", ', 1)
    _, reward, _, _, step_info = env.step(answer)
    assert reward == 5.0 and "cards_correct" not in step_info


def test_custom_rewards_and_target():
    table = RewardTable(correct=1.0, wrong_numbers=-0.25)
    env = GeneralPointsEnv(target=10, rewards=table, num_cards=3)
    _, info = env.reset(seed=0)
    assert len(info["cards"]) == 3 and info["target"] == 10
    assert env.step('{"formula": "1"}')[1] == -0.25
    assert env.step(expert_answer(info))[1] == 1.0


def test_options_set_the_hand():
    env = GeneralPointsEnv()
    obs, info = env.reset(options={"cards": ["8", "3", "8", "3"], "suits": ["S", "H", "D", "C"]})
    assert info["cards"] == ["8", "3", "8", "3"] and info["num_solutions"] == 1
    assert env.step('{"formula": "8/(3-8/3)=24"}')[1] == 5.0
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"cards": ["8", "3", "X", "3"]})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"observation": "audio"},
        {"suit_color": "green"},
        {"num_cards": 0},
        {"num_cards": 9},
        {"max_attempts": 0},
        {"target": 2.5},
        {"resolution": 10},
        {"resolution": "448"},
        {"render_mode": "human"},
    ],
)
def test_bad_options_raise_clear_errors(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GeneralPointsEnv(**kwargs)


def test_unreachable_target_reports_instead_of_looping():
    env = GeneralPointsEnv(target=10**9, num_cards=2)
    with pytest.raises(ValueError, match="no solvable hand"):
        env.reset(seed=0)


@pytest.mark.parametrize("response", [None, 42, b"\xff\xfe", ["formula"], "", "\x00" * 10, "9**9**9"])
def test_any_response_is_scored(response):
    env = GeneralPointsEnv()
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(response)
    assert reward == -3.0 and not terminated and not truncated
    assert isinstance(info["feedback"], str) and info["feedback"]
