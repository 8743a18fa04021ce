"""One episode of a task preset, named by what fixes it and driven answer by answer: the piece every
trainer integration shares (TRL's environments and reward functions, verl's reward function,
interaction and agent loop).

An `EpisodeSpec` is the preset, the seed, the episode index (fixed route orders), the evaluation
options and the prompt style; an `EnvSession` resets that episode and steps it with untrusted answers
(bounded like the rollout bounds them), saying after each what the prompt style sends next.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from shiftlab.errors import InputError
from shiftlab.messages import Message
from shiftlab.rollout import MAX_ANSWER_CHARS, bounded_response
from shiftlab.task import TaskPreset, get_preset

MAX_SEED = 2**63 - 1


class EpisodeError(InputError):
    """An episode that cannot be named: an unknown preset, a bad seed, text that is no episode."""


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything that fixes one episode: the preset, `reset(seed=seed)`, the task's reset options for
    episode `episode` (fixed route orders), the evaluation options (held-out splits) and the prompt style
    (None: the preset's own). Stored as JSON in `reward_model.ground_truth`."""

    preset: str
    seed: int
    episode: int = 0
    evaluation: bool = False
    prompt: str | None = None

    def __post_init__(self):
        try:
            get_preset(self.preset)
        except KeyError as error:
            raise EpisodeError(error.args[0]) from None
        for name in ("seed", "episode"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
                raise EpisodeError(f"episode {name} must be a non-negative integer, not {value!r}")
        if not isinstance(self.evaluation, bool):
            raise EpisodeError(f"episode evaluation must be true or false, not {self.evaluation!r}")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise EpisodeError(f"episode prompt must be a style name or null, not {self.prompt!r}")

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "seed": self.seed, "episode": self.episode,
                "evaluation": self.evaluation, "prompt": self.prompt}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EpisodeSpec:
        """From a mapping with the fields (other keys, such as an interaction's name, are ignored)."""
        if not isinstance(values, Mapping) or "preset" not in values or "seed" not in values:
            raise EpisodeError(f"an episode needs a preset and a seed, not {str(values)[:200]!r}")
        return cls(values["preset"], _plain(values["seed"]), _plain(values.get("episode", 0)),
                   _plain(values.get("evaluation", False)), values.get("prompt"))

    @classmethod
    def from_json(cls, text: Any) -> EpisodeSpec:
        if isinstance(text, Mapping):
            return cls.from_mapping(text)
        try:
            values = json.loads(text)
        except (TypeError, ValueError):
            raise EpisodeError(f"ground_truth is not a shiftlab episode: {str(text)[:200]!r}") from None
        return cls.from_mapping(values)


def _plain(value: Any) -> Any:
    """numpy scalars (parquet rows come back as them) and enums as plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass
class Step:
    """What one answer did: its reward, whether the episode ended, and the messages to append to the
    conversation (empty when it ended)."""

    reward: float
    done: bool
    messages: list[Message]
    info: dict[str, Any]


@dataclass
class EnvSession:
    """One episode of a preset driven answer by answer, as the trainers' multi-turn loops drive it. After each
    answer the preset's prompt style says what comes next; a style that appends to the conversation (a
    revision) gives its new messages, and one that starts afresh (V-IRL after a correct move) has its
    whole new conversation appended, since verl trains on one growing sequence per episode."""

    spec: EpisodeSpec
    env: Any = None
    rewards: list[float] = field(default_factory=list)
    done: bool = False
    cut: bool = False
    max_answer_chars: int = MAX_ANSWER_CHARS  # answers are cut to this before the verifier reads them

    def __post_init__(self):
        self.preset: TaskPreset = get_preset(self.spec.preset)
        self.task = self.preset.owner
        self.style = self.preset.make_prompt(self.spec.prompt)
        if self.env is None:
            self.env = self.preset.make_env(evaluation=self.spec.evaluation)
        self.info: dict[str, Any] = {}
        self.messages: list[Message] = []
        self.point = 0

    def reset(self) -> list[Message]:
        """The episode's first conversation (shiftlab messages: images as arrays)."""
        observation, info = self.env.reset(seed=self.spec.seed,
                                           options=self.task.reset_options(self.env, self.spec.episode))
        self.info, self.rewards, self.done, self.cut = dict(info), [], False, False
        self.messages = self.style.first_turn(observation, info)
        self.point = self.task.decision_point(info)
        return self.messages

    def step(self, answer: Any) -> Step:
        if self.done:
            raise RuntimeError("the episode has ended; reset it first")
        text, cut = bounded_response(answer, self.max_answer_chars)
        self.cut = self.cut or cut is not None
        self.point = self.task.decision_point(self.info)
        observation, reward, terminated, truncated, info = self.env.step(text)
        self.rewards.append(float(reward))
        self.done = bool(terminated or truncated)
        self.info = dict(info)
        appended: list[Message] = []
        if not self.done:
            following = self.style.next_turn(self.messages, text, observation, info)
            appended = _appended(self.messages, following)
            self.messages = following
        return Step(float(reward), self.done, appended, self.info)

    def close(self) -> None:
        self.env.close()


def _appended(previous: list[Message], following: list[Message]) -> list[Message]:
    """The messages `following` adds after the answer to `previous`: its tail when it extends `previous`
    by the assistant's answer (compared by identity: contents hold arrays), else all of it."""
    n = len(previous)
    if (len(following) > n and all(a is b for a, b in zip(previous, following[:n], strict=True))
            and following[n].get("role") == "assistant"):
        return list(following[n + 1:])
    return list(following)
