"""V-IRL navigation as a shiftlab task: its presets, prompt styles, metrics and pretraining data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np

from shiftlab.metrics import episode_metrics
from shiftlab.task import Source, SupportQuestion, Task, TaskPreset
from shiftlab.tasks.virl.env import VirlEnv
from shiftlab.tasks.virl.expert import expert_answer, random_answer
from shiftlab.tasks.virl.geo import DIRECTIONS
from shiftlab.tasks.virl.milestones import relative_turn
from shiftlab.tasks.virl.prompt import VirlPrompt
from shiftlab.tasks.virl.rail import ABSOLUTE_DIRECTIONS, RELATIVE_DIRECTIONS, turn

NAME = "virl"
ENV_ID = "shiftlab/VIRL-v0"


def _preset(name: str, shift: str, description: str, evaluation: dict | None = None, **env_kwargs: Any) -> TaskPreset:
    return TaskPreset(name, NAME, env_kwargs, shift, description, evaluation_overrides=evaluation or {})


# The paper's settings (Sec. 4.2, App. B): train on New York routes with absolute actions; the rule
# shift answers in relative actions; the visual shift walks the mini benchmark's shape, 9 cities x 2
# short routes in a fixed order. Unlike the paper, in-distribution evaluation uses a held-out district
# of the training city rather than the training routes, and the OOD New York routes are a third district.
_HELD_OUT = {"split": "test", "routes_per_city": 200}
_MINI = {"city": "all", "split": "ood", "route_lengths": "mini", "route_order": "sequential"}
PRESETS = (
    _preset("virl-l", "id", "V-IRL navigation as text, absolute actions, New York", evaluation=_HELD_OUT,
            observation="text", action_space="absolute", city="new_york", split="train"),
    _preset("virl-l/rule-ood", "rule", "V-IRL text, relative actions (left/right), held-out New York district",
            observation="text", action_space="relative", city="new_york", **_HELD_OUT),
    _preset("virl-vl", "id", "V-IRL with 2x2 street views, absolute actions, New York", evaluation=_HELD_OUT,
            observation="image", action_space="absolute", city="new_york", split="train"),
    _preset("virl-vl/rule-ood", "rule", "V-IRL street views, relative actions, held-out New York district",
            observation="image", action_space="relative", city="new_york", **_HELD_OUT),
    _preset("virl-vl/visual-ood", "visual",
            "V-IRL street views in 9 cities x 2 short routes, fixed order (mini benchmark)",
            observation="image", action_space="absolute", routes_per_city=2, **_MINI),
    _preset("virl-vl/visual-ood-extended", "visual", "V-IRL street views in 9 cities x 25 short routes, fixed order",
            observation="image", action_space="absolute", routes_per_city=25, **_MINI),
)

_PROMPTS = {"default": VirlPrompt(), "example": VirlPrompt(example=True), "compact": VirlPrompt(compact=True)}


class Virl(Task):
    name = NAME
    presets = PRESETS
    env_id = ENV_ID
    env_class = VirlEnv
    prompts = _PROMPTS
    answer_key = "action"
    turn_keys = ("outcome", "feedback", "attempts_left", "step_index", "city")
    report_metrics = ("step_accuracy",)
    # Tiny views (the text does not depend on them), and training districts only, so that no
    # held-out route reaches a tokenizer.
    corpus_options = MappingProxyType({"resolution": 32, "split": "train"})
    problem_keys = ("observation", "action_space", "city", "split", "route_lengths", "data_dir")

    def expert_answer(self, info: Mapping) -> str:
        return expert_answer(info)

    def random_answer(self, info: Mapping, rng: np.random.Generator) -> str:
        return random_answer(info, rng)

    def decision_point(self, info: Mapping) -> int:
        return int(info.get("step_index", 0))

    def reset_options(self, env: gym.Env, episode: int) -> dict | None:
        return env.unwrapped.options_for_episode(episode)

    def metrics(self, records: Sequence[dict], attempts: int) -> dict[str, Any]:
        """The share of correct moves (`step_accuracy`), and every figure per city when there are several."""
        if not any(r["turns"] for r in records):
            return {}
        cities: dict[str, list[dict]] = defaultdict(list)
        for record in records:
            cities[record["start"].get("city", "?")].append(record)
        per_city = {city: {**episode_metrics(rs, attempts), **_step_accuracy(rs)}
                    for city, rs in sorted(cities.items()) if city != "?"} if len(cities) > 1 else {}
        return {**_step_accuracy(records), "per_city": per_city}

    def pretraining_sources(self, episodes: int, images: bool) -> list[Source]:
        """Both action spaces in every city, as text (some with a revision turn) or as street views."""
        count = max(1, episodes // 8)
        sources = []
        for action_space in ("absolute", "relative"):
            if images:
                sources.append(Source("virl-vl", count, {"action_space": action_space, "city": "all"}))
            else:
                sources.append(Source("virl-l", count, {"action_space": action_space, "city": "all"}))
                sources.append(Source("virl-l", max(1, count // 4), {"action_space": action_space}, revisions=1))
        return sources

    def support_questions(self, images: bool) -> list[SupportQuestion]:
        return [] if images else [_turn, _facing, _instruction_action]


def _step_accuracy(records: Sequence[dict]) -> dict[str, float]:
    turns = [t for r in records for t in r["turns"]]
    return {"step_accuracy": sum(t.get("outcome") == "correct_action" for t in turns) / len(turns)} if turns else {}


def _turn(rng: np.random.Generator) -> tuple[str, str, None]:
    start, end = (int(x) for x in rng.integers(len(DIRECTIONS), size=2))
    if start == end:
        end = (end + 2) % len(DIRECTIONS)
    return (f"You face {DIRECTIONS[start]} and must face {DIRECTIONS[end]}. Which way do you turn?",
            relative_turn(45.0 * start, 45.0 * end), None)


def _instruction_action(rng: np.random.Generator) -> tuple[str, str, None]:
    """A turn sentence as the routes write it (both words of the turn are in it) and the action it asks
    for in either action space: copying the right word is the whole of the rule."""
    start, end = (int(x) for x in rng.integers(len(DIRECTIONS), size=2))
    if start == end:
        end = (end + 3) % len(DIRECTIONS)
    word = relative_turn(45.0 * start, 45.0 * end)
    space = ("absolute", "relative")[int(rng.integers(2))]
    choices = ", ".join(RELATIVE_DIRECTIONS if space == "relative" else ABSOLUTE_DIRECTIONS)
    answer = turn(word if space == "relative" else DIRECTIONS[end])
    return (f'The instruction says: "Turn {word} to face {DIRECTIONS[end]}." Which action carries it out, '
            f"where turn_direction(x) takes x from: {choices}?", answer, None)


def _facing(rng: np.random.Generator) -> tuple[str, str, None]:
    start = int(rng.integers(len(DIRECTIONS)))
    turns = {"left": -2, "right": 2, "around": 4}
    word = list(turns)[int(rng.integers(len(turns)))]
    end = DIRECTIONS[(start + turns[word]) % len(DIRECTIONS)]
    return f"You face {DIRECTIONS[start]} and turn {word}. Which direction do you face now?", end, None
