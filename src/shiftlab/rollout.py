"""Batched multi-turn rollouts: many episodes step together, one policy call per turn for all of them.

Every turn, the prompts of all live episodes go to the policy in one batch; each environment verifies
its answer; the task's prompt style builds the next turn's conversation (one task appends the answer
and the feedback, another starts afresh after a correct move: the runner does not care which). Finished episodes are handed out
as they finish, so a caller can write them down at once and lose nothing if killed. Answers are
untrusted text: each is bounded in length and made encodable before anything else sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shiftlab.messages import Message
from shiftlab.policies.base import Policy, Request
from shiftlab.task import TaskPreset


def json_safe(value: Any) -> Any:
    """Messages and info as JSON: images become {"type": "image"}, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        if value.get("type") == "image":
            return {"type": "image"}
        return {str(k): json_safe(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Turn:
    messages: list[Message]
    response: str
    reward: float
    point: int  # the decision point answered (`Task.decision_point`; 0 for one-point tasks)
    info: dict[str, Any]
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()
    done: bool = False
    # The prompt as the policy read it (local models), for training; not part of the trajectory's record.
    prompt_ids: tuple[int, ...] = ()
    prompt_extras: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Trajectory:
    task: str
    episode: int
    seed: int
    start: dict[str, Any]
    turns: list[Turn] = field(default_factory=list)
    success: bool = False

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.turns))

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "episode": self.episode,
            "seed": self.seed,
            "success": self.success,
            "return": self.total_reward,
            "start": json_safe(self.start),
            "turns": [
                {
                    "messages": json_safe(t.messages),
                    "response": t.response,
                    "token_ids": list(t.token_ids),
                    "logprobs": list(t.logprobs),
                    "reward": t.reward,
                    "point": t.point,
                    "done": t.done,
                    **json_safe(t.info),
                }
                for t in self.turns
            ],
        }


@dataclass
class _Live:
    env: Any
    trajectory: Trajectory
    messages: list[Message]
    info: dict[str, Any]


MAX_ANSWER_CHARS = 16_384


def bounded_response(text: Any, limit: int = MAX_ANSWER_CHARS) -> tuple[str, int | None]:
    """A policy's text as the environments, prompts and logs take it: a str of at most `limit`
    characters (the rest is cut, and the original length returned) that encodes as UTF-8 (a lone
    surrogate, which a faulty server can send, becomes '?' instead of breaking the next request)."""
    text = text if isinstance(text, str) else ""
    cut = len(text) if len(text) > limit else None
    text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text, cut


def iter_episodes(
    preset: TaskPreset,
    policy: Policy,
    episodes: Iterable[int],
    seed: int = 0,
    batch_size: int = 32,
    evaluation: bool = True,
    max_response_chars: int = MAX_ANSWER_CHARS,
    prompt: str | None = None,
    on_turn: Callable[[int], Any] | None = None,
    **env_overrides: Any,
) -> Iterator[Trajectory]:
    """Play the given episode indices and yield each trajectory as it finishes. Episode i resets with
    seed `seed + i` (and the task's `reset_options` for episode i). `episodes` is read lazily, so
    a range of any length streams in memory bounded by `batch_size`. Answers longer than
    `max_response_chars` are cut there before they are scored, stored or sent back (the turn records
    `response_chars`, the length that came). `prompt` names the task's prompt style (None: the preset's own).
    `on_turn` is called with the number of answers after each policy call: progress that moves before
    the first episode finishes, which with a slow model can take many turns."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if max_response_chars < 1:
        raise ValueError(f"max_response_chars must be positive, not {max_response_chars}")
    pending = iter(episodes)
    task, style = preset.owner, preset.make_prompt(prompt)
    live: list[_Live] = []
    idle: list[Any] = []  # environments are reused: building one costs far more than a reset

    def start(index: int) -> _Live:
        env = idle.pop() if idle else preset.make_env(evaluation=evaluation, **env_overrides)
        observation, info = env.reset(seed=seed + index, options=task.reset_options(env, index))
        trajectory = Trajectory(preset.name, index, seed + index, dict(info))
        return _Live(env, trajectory, style.first_turn(observation, info), info)

    try:
        exhausted = False
        while True:
            while not exhausted and len(live) < batch_size:
                index = next(pending, None)
                if index is None:
                    exhausted = True
                else:
                    live.append(start(index))
            if not live:
                return
            responses = policy.generate([Request(preset.name, e.messages, e.info) for e in live])
            if len(responses) != len(live):
                raise RuntimeError(f"policy {policy.name} returned {len(responses)} responses for {len(live)} prompts")
            if on_turn is not None:
                on_turn(len(responses))
            still = []
            for episode, response in zip(live, responses, strict=True):
                point = task.decision_point(episode.info)
                text, cut = bounded_response(response.text, max_response_chars)
                observation, reward, terminated, truncated, info = episode.env.step(text)
                done = terminated or truncated
                turn_info = {k: info[k] for k in task.turn_keys if k in info}
                if cut is not None:
                    turn_info["response_chars"] = cut
                episode.trajectory.turns.append(Turn(episode.messages, text, float(reward), point, turn_info,
                                                     response.token_ids, response.logprobs, done,
                                                     response.prompt_ids, response.prompt_extras))
                if done:
                    episode.trajectory.success = bool(info.get("success", False))
                    idle.append(episode.env)
                    yield episode.trajectory
                else:
                    episode.messages = style.next_turn(episode.messages, text, observation, info)
                    episode.info = info
                    still.append(episode)
            live = still
    finally:
        for episode in live:
            episode.env.close()
        for env in idle:
            env.close()


def run_episodes(preset: TaskPreset, policy: Policy, episodes: Iterable[int], **options: Any) -> list[Trajectory]:
    """`iter_episodes` collected: the trajectories in the order they finished."""
    return list(iter_episodes(preset, policy, episodes, **options))
