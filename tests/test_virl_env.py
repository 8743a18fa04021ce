"""The V-IRL environment over procedural cities and over exported released-format data."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

from shiftlab.play import play_episode
from shiftlab.task import get_preset, list_presets
from shiftlab.tasks.virl.env import Compat, VirlEnv
from shiftlab.tasks.virl.expert import expert_answer, format_answer
from shiftlab.tasks.virl.export import export_procedural
from shiftlab.tasks.virl.geo import bearing, to_xy
from shiftlab.tasks.virl.render import render_grid
from shiftlab.tasks.virl.scene import view_headings
from shiftlab.tasks.virl.world import CITIES, build_world

VIRL_PRESETS = [p.name for p in list_presets() if p.name.startswith("virl")]


def walk(env: VirlEnv, seed: int | None = None, options: dict | None = None):
    """Run the expert through one episode; returns rewards and the final info."""
    _, info = env.reset(seed=seed, options=options)
    rewards = []
    while True:
        _, reward, terminated, truncated, info = env.step(expert_answer(info))
        rewards.append(reward)
        if terminated or truncated:
            return rewards, info


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_procedural(tmp_path_factory.mktemp("virl") / "data", routes=2, pano_width=384, rotation=37.0)


@pytest.mark.parametrize("observation", ["text", "image"])
def test_check_env(observation):
    env = VirlEnv(observation=observation, routes_per_city=3, resolution=48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", VIRL_PRESETS)
def test_expert_succeeds_on_every_preset(name):
    preset = get_preset(name)
    overrides = {"resolution": 48} if preset.env_kwargs["observation"] == "image" else {}
    for seed in range(3):
        episode = play_episode(preset, seed, lambda messages, info: preset.expert_answer(info), **overrides)
        assert episode.success
        assert all(turn.reward == 1.0 for turn in episode.turns)


@pytest.mark.parametrize("action_space", ["absolute", "relative"])
@pytest.mark.parametrize("observation", ["text", "image"])
def test_expert_succeeds_on_released_data(exported, action_space, observation):
    env = VirlEnv(observation=observation, action_space=action_space, data_dir=str(exported), resolution=48)
    for route in range(2):
        rewards, info = walk(env, seed=route, options={"route_idx": route})
        assert info["success"] and set(rewards) == {1.0}


@pytest.mark.parametrize("city", list(CITIES))
def test_expert_succeeds_in_every_city_with_both_action_spaces(city):
    for action_space in ("absolute", "relative"):
        env = VirlEnv(city=city, split="ood", action_space=action_space, routes_per_city=4, route_lengths="mini")
        for route in range(4):
            rewards, info = walk(env, seed=route, options={"route_idx": route})
            assert info["success"] and info["city"] == city


def test_same_seed_same_episode():
    a, b = VirlEnv(routes_per_city=50), VirlEnv(routes_per_city=50)
    for seed in range(5):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert obs_a == obs_b and info_a == info_b
        assert a.rail == b.rail


def test_image_observation_is_a_pure_function_of_the_seed():
    a = VirlEnv(observation="image", routes_per_city=5, resolution=48)
    b = VirlEnv(observation="image", routes_per_city=5, resolution=48)
    assert np.array_equal(a.reset(seed=3)[0], b.reset(seed=3)[0])


def test_splits_are_disjoint_districts():
    train = VirlEnv(split="train", routes_per_city=5)
    test = VirlEnv(split="test", routes_per_city=5)
    starts = [
        {env.source.record(i)["start_place"]["name"] for i in range(5)} for env in (train, test)
    ]
    assert not starts[0] & starts[1]
    assert build_world("new_york", 0).region != build_world("new_york", 1).region


def test_visual_ood_preset_is_nine_cities_by_two_routes_in_order():
    env = get_preset("virl-vl/visual-ood").make_env(resolution=32).unwrapped
    assert len(env.source) == 18
    cities = []
    for _ in range(18):
        _, info = env.reset()
        cities.append(info["city"])
    assert cities == [c for c in CITIES for _ in range(2)]
    assert env.reset()[1]["route_index"] == 0  # the order starts over


def test_evaluation_uses_the_held_out_district():
    preset = get_preset("virl-l")
    assert preset.make_env().unwrapped.source.district == 0
    assert preset.make_env(evaluation=True).unwrapped.source.district == 1


def test_wrong_answers_use_up_the_attempts_at_a_point():
    env = VirlEnv(routes_per_city=5, max_attempts=2)
    _, info = env.reset(seed=1)
    _, info = env.step(expert_answer(info))[::4]  # one correct move
    assert info["step_index"] == 1 and info["attempts_left"] == 2
    wrong = format_answer("No landmarks nearby", "", "stop()")
    _, reward, terminated, truncated, info = env.step(wrong)
    assert (reward, terminated, truncated, info["attempts_left"]) == (-1.0, False, False, 1)
    _, reward, terminated, truncated, info = env.step(wrong)
    assert truncated and not terminated and info["success"] is False
    with pytest.raises(ResetNeeded):
        env.step(wrong)


def test_original_extra_unscored_call():
    env = VirlEnv(routes_per_city=5, max_attempts=2, compat="original")
    env.reset(seed=1)
    wrong = format_answer("No landmarks nearby", "", "stop()")
    assert env.step(wrong)[3] is False
    assert env.step(wrong)[3] is False
    _, reward, _, truncated, info = env.step("anything")
    assert reward == -1.0 and truncated and info["outcome"] == "out_of_attempts"


def test_original_compat_flags_change_the_instructions_and_layout():
    fixed, legacy = VirlEnv(routes_per_city=20), VirlEnv(routes_per_city=20, compat=Compat.original())
    differs = False
    for seed in range(20):
        a, b = fixed.reset(seed=seed)[1], legacy.reset(seed=seed)[1]
        differs |= a["instruction"] != b["instruction"]
    assert differs  # some route has a turn across north, which only the wrapped rule gets right
    assert legacy.layout == "legacy" and fixed.layout == "prompt"
    with pytest.raises(ValueError, match="compat"):
        VirlEnv(compat="newest")


def test_info_and_options():
    env = VirlEnv(action_space="relative", routes_per_city=10)
    obs, info = env.reset(seed=0, options={"route_idx": 7, "initial_heading": 90})
    assert info["route_index"] == 7 and env.rail.initial_heading == 90
    assert obs == info["oracle_observation"]
    assert info["expert_action"] in info["action_space"] and "turn_direction(left)" in info["action_space"]
    assert info["instruction"].startswith("1. First, turn ")
    assert info["observation_history"].endswith(f"O_1: {obs}\nA_1: \n")
    with pytest.raises(ValueError, match="route_idx"):
        env.reset(options={"route_idx": 10})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"observation": "audio"}, "observation"), ({"action_space": "diagonal"}, "action_space"),
    ({"city": "atlantis"}, "atlantis"), ({"split": "dev"}, "split"), ({"route_lengths": "epic"}, "route_lengths"),
    ({"max_attempts": 0}, "max_attempts"), ({"resolution": 4}, "resolution"), ({"route_order": "zigzag"}, "route_order"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VirlEnv(**kwargs)


def test_missing_data_dir_is_a_clear_error(tmp_path):
    from shiftlab.tasks.virl.data import DataError

    with pytest.raises(DataError, match="route_infos.json"):
        VirlEnv(data_dir=str(tmp_path))


def test_the_landmark_named_for_a_side_is_in_that_sides_tile():
    """Pixel probe: at milestones whose landmark is on the right (left), removing that one sign from the
    city changes pixels in the right (left) tile of the prompt layout, and nowhere else."""
    size = 128
    env = VirlEnv(observation="image", routes_per_city=30, resolution=size, drop_rate=1.0)
    checked = 0
    for route in range(30):
        env.reset(seed=route, options={"route_idx": route})
        world = build_world(env.source.city(route), env.source.district)
        by_name = {place.name: i for i, place in enumerate(world.places)}
        for point in env.rail.points:
            words = point.landmark.split(" is on your ")
            if len(words) != 2 or words[1] not in ("right", "left") or words[0].startswith("The destination"):
                continue
            index = by_name[words[0]]
            tile = 1 if words[1] == "right" else 3  # grid order: front, right, back, left
            offset = (bearing(point.geocode, world.places[index].geocode) - view_headings(point.heading)[tile]) % 360
            assert min(offset, 360 - offset) < 45
            x, y = to_xy(world.anchor, point.geocode)
            without = replace(world.scene, signs=world.scene.signs[:index] + world.scene.signs[index + 1:])
            changed = np.any(render_grid(world.scene, x, y, point.heading, size)
                             != render_grid(without, x, y, point.heading, size), axis=-1)
            edge = size + 5
            counts = [changed[:size, :size].sum(), changed[:size, edge:].sum(), changed[edge:, :size].sum(),
                      changed[edge:, edge:].sum()]
            assert counts[tile] >= 20 and counts[tile] >= 0.9 * sum(counts), (words, counts)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize(("preset_name", "evaluation"), [
    ("virl-l", False), ("virl-l", True), ("virl-vl/visual-ood-extended", False)])
def test_expert_walks_every_route_of_the_pools(preset_name, evaluation):
    """Every route of the training pool (1000), the held-out pool (200) and the extended OOD set (225):
    in both action spaces, the expert succeeds and the rail keeps its invariants."""
    env = get_preset(preset_name).make_env(evaluation=evaluation, observation="text").unwrapped
    for route in range(len(env.source)):
        for action_space in ("absolute", "relative"):
            env.action_space_name = action_space
            rewards, info = walk(env, seed=route, options={"route_idx": route})
            assert info["success"] and set(rewards) == {1.0}, (route, action_space)
        actions = [p.absolute_action for p in env.rail.points]
        milestones = len(env.source.record(route)["route_results"]["geocode_list"])
        assert actions[-1] == "stop()" and sum(a.startswith("turn") for a in actions) == milestones
        sentences = [p.sentence for p in env.rail.points]
        assert sentences == sorted(sentences) and sentences[-1] == 2 * milestones - 1


def test_legacy_layout_shows_other_headings():
    prompt = VirlEnv(observation="image", routes_per_city=3, resolution=48)
    legacy = VirlEnv(observation="image", routes_per_city=3, resolution=48, compat=Compat(legacy_grid_layout=True))
    a, b = prompt.reset(seed=0)[0], legacy.reset(seed=0)[0]
    point = prompt.rail.points[0]
    world = build_world("new_york", 0)
    x, y = to_xy(world.anchor, point.geocode)
    assert np.array_equal(b, render_grid(world.scene, x, y, point.heading, 48, layout="legacy"))
    assert not np.array_equal(a, b)
