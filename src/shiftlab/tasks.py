"""Task presets: named settings of an environment and its prompt style, in-distribution or shifted.

Evaluation, training and the CLI refer to tasks only by these names. A name is `<group>` for the
in-distribution setting of a task and `<group>/<shift>` for its out-of-distribution variants, so
`gp-l/rule-ood` is GP-L under the shifted face-card rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import gymnasium as gym

from shiftlab.envs import GENERAL_POINTS_ID
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
    # What the task reports beyond success: "recognition" for image tasks that name the cards.
    metrics: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.shift not in SHIFTS:
            raise ValueError(f"shift must be one of {SHIFTS}, not {self.shift!r}")
        object.__setattr__(self, "env_kwargs", MappingProxyType(dict(self.env_kwargs)))

    @property
    def group(self) -> str:
        """The task this preset belongs to: 'gp-vl' for 'gp-vl/visual-ood'."""
        return self.name.split("/", 1)[0]

    @property
    def is_ood(self) -> bool:
        return self.shift != "id"

    def make_env(self, **overrides: Any) -> gym.Env:
        """A fresh environment; `overrides` replace preset options (e.g. resolution=224)."""
        return gym.make(self.env_id, **{**self.env_kwargs, **overrides})

    def make_prompt(self) -> PromptStyle:
        return get_prompt(self.prompt)


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
