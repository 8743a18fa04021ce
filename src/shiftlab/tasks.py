"""Task presets: named settings of an environment and its prompt style, in-distribution or shifted.

Evaluation, training and the CLI refer to tasks only by these names. A name is `<group>` for the
in-distribution setting of a task and `<group>/<shift>` for its out-of-distribution variants, so
`gp-l/rule-ood` is GP-L under the shifted face-card rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator

from shiftlab.envs import GENERAL_POINTS_ID, VIRL_ID
from shiftlab.prompts import PromptStyle, get_prompt

SHIFTS = ("id", "rule", "visual")


@dataclass(frozen=True)
class TaskPreset:
    name: str
    env_id: str
    env_kwargs: Mapping[str, Any]
    prompt: str
    shift: str
    description: str
    # What the task reports beyond success: "recognition" for image tasks that name the cards,
    # "step_accuracy" and "per_city" for navigation.
    metrics: tuple[str, ...] = field(default=())
    # Options that evaluation uses instead of the training ones (held-out districts for V-IRL).
    evaluation_overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.shift not in SHIFTS:
            raise ValueError(f"shift must be one of {SHIFTS}, not {self.shift!r}")
        object.__setattr__(self, "env_kwargs", MappingProxyType(dict(self.env_kwargs)))
        object.__setattr__(self, "evaluation_overrides", MappingProxyType(dict(self.evaluation_overrides)))

    @property
    def group(self) -> str:
        """The task this preset belongs to: 'gp-vl' for 'gp-vl/visual-ood'."""
        return self.name.split("/", 1)[0]

    @property
    def is_ood(self) -> bool:
        return self.shift != "id"

    def make_env(self, *, evaluation: bool = False, **overrides: Any) -> gym.Env:
        """A fresh environment; `evaluation=True` applies the evaluation options (e.g. held-out
        districts), and `overrides` replace any option (e.g. resolution=224)."""
        kwargs = {**self.env_kwargs, **(self.evaluation_overrides if evaluation else {}), **overrides}
        return gym.make(self.env_id, **kwargs)

    def make_prompt(self) -> PromptStyle:
        return get_prompt(self.prompt)

    def expert_answer(self, info: Mapping) -> str:
        """The task expert's answer for the state described by an env `info` dict."""
        return _policies(self.env_id)[0](info)

    def random_answer(self, info: Mapping, rng: np.random.Generator) -> str:
        """A well-formed random answer: the baseline that knows the format but not the task."""
        return _policies(self.env_id)[1](info, rng)


def _policies(env_id: str):
    if env_id == GENERAL_POINTS_ID:
        from shiftlab.envs.general_points import expert as gp

        return gp.expert_answer, gp.random_answer
    from shiftlab.envs.virl import expert as virl

    return virl.expert_answer, virl.random_answer


_PRESETS: dict[str, TaskPreset] = {}


def register_preset(preset: TaskPreset) -> TaskPreset:
    if preset.name in _PRESETS:
        raise ValueError(f"task preset {preset.name!r} is already registered")
    _PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> TaskPreset:
    try:
        return _PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(_PRESETS)}") from None


def list_presets() -> list[TaskPreset]:
    return list(_PRESETS.values())


def ood_presets(name: str) -> list[TaskPreset]:
    """The shifted variants of the task `name` belongs to."""
    group = get_preset(name).group
    return [p for p in _PRESETS.values() if p.group == group and p.is_ood]


def check_env_options(tasks: list[str], options: Mapping[str, Any]) -> None:
    """Raise ValueError unless `options` make a valid environment for every task (built and reset once)
    and leave each task's own settings alone: options that redefine a preset (e.g. the face-card rule)
    would erase its shift."""
    for name in tasks:
        preset = get_preset(name)
        known = _env_options(preset.env_id)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown environment option {unknown[0]!r} for task {name!r}; options: "
                             f"{', '.join(sorted(known - set(preset.env_kwargs)))}")
        taken = sorted(set(options) & set(preset.env_kwargs))
        if taken:
            raise ValueError(f"option {taken[0]!r} is set by task {name!r} itself (it defines the task)")
        try:
            env = preset.make_env(evaluation=True, **options)
            try:
                env.reset(seed=0)  # some misfits only show when dealing (a target no hand reaches)
            finally:
                env.close()
        except (TypeError, ValueError) as error:
            raise ValueError(f"options do not fit task {name!r}: {str(error).splitlines()[0]}") from None


def _env_options(env_id: str) -> set[str]:
    """The keyword options an environment's constructor takes."""
    creator = gym.spec(env_id).entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return {p.name for p in inspect.signature(creator).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self", "render_mode"}


def _general_points(name: str, shift: str, description: str, **env_kwargs: Any) -> None:
    image = env_kwargs.get("observation") == "image"
    register_preset(
        TaskPreset(
            name=name,
            env_id=GENERAL_POINTS_ID,
            env_kwargs=env_kwargs,
            prompt="general-points",
            shift=shift,
            description=description,
            metrics=("recognition",) if image else (),
        )
    )


# The paper's settings (arXiv 2501.17161, Sec. 5 and App. A.3): training and in-distribution
# evaluation count J/Q/K as 10 and show black suits; the rule shift counts them as 11/12/13 and deals
# at least one; the visual shift shows red suits.
_general_points("gp-l", "id", "GeneralPoints as text; J/Q/K count as 10", observation="text", face_cards_as_ten=True)
_general_points(
    "gp-l/rule-ood", "rule", "GeneralPoints as text; J/Q/K count as 11/12/13, at least one dealt",
    observation="text", face_cards_as_ten=False,
)
_general_points(
    "gp-vl", "id", "GeneralPoints as an image of black-suited cards; J/Q/K count as 10",
    observation="image", face_cards_as_ten=True, suit_color="black",
)
_general_points(
    "gp-vl/rule-ood", "rule", "GeneralPoints image, black suits; J/Q/K count as 11/12/13, at least one dealt",
    observation="image", face_cards_as_ten=False, suit_color="black",
)
_general_points(
    "gp-vl/visual-ood", "visual", "GeneralPoints image with red suits (unseen colour); J/Q/K count as 10",
    observation="image", face_cards_as_ten=True, suit_color="red",
)


def _virl(name: str, shift: str, description: str, evaluation: dict | None = None, **env_kwargs: Any) -> None:
    register_preset(
        TaskPreset(
            name=name,
            env_id=VIRL_ID,
            env_kwargs=env_kwargs,
            prompt="virl",
            shift=shift,
            description=description,
            metrics=("step_accuracy", "per_city"),
            evaluation_overrides=evaluation or {},
        )
    )


# The paper's settings (Sec. 4.2, App. B): train on New York routes with absolute actions; the rule
# shift answers in relative actions; the visual shift walks the mini benchmark's shape, 9 cities x 2
# short routes in a fixed order. Unlike the paper, in-distribution evaluation uses a held-out district
# of the training city rather than the training routes, and the OOD New York routes are a third district.
_HELD_OUT = {"split": "test", "routes_per_city": 200}
_MINI = {"city": "all", "split": "ood", "route_lengths": "mini", "route_order": "sequential"}
_virl("virl-l", "id", "V-IRL navigation as text, absolute actions, New York", evaluation=_HELD_OUT,
      observation="text", action_space="absolute", city="new_york", split="train")
_virl("virl-l/rule-ood", "rule", "V-IRL text, relative actions (left/right), held-out New York district",
      observation="text", action_space="relative", city="new_york", **_HELD_OUT)
_virl("virl-vl", "id", "V-IRL with 2x2 street views, absolute actions, New York", evaluation=_HELD_OUT,
      observation="image", action_space="absolute", city="new_york", split="train")
_virl("virl-vl/rule-ood", "rule", "V-IRL street views, relative actions, held-out New York district",
      observation="image", action_space="relative", city="new_york", **_HELD_OUT)
_virl("virl-vl/visual-ood", "visual", "V-IRL street views in 9 cities x 2 short routes, fixed order (mini benchmark)",
      observation="image", action_space="absolute", routes_per_city=2, **_MINI)
_virl("virl-vl/visual-ood-extended", "visual", "V-IRL street views in 9 cities x 25 short routes, fixed order",
      observation="image", action_space="absolute", routes_per_city=25, **_MINI)
