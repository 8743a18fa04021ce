"""Play single episodes of a task preset and keep the transcript: the demo behind `shiftlab play`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shiftlab.messages import Message, text_of
from shiftlab.task import TaskPreset

# A policy for one episode: the conversation so far and the env's info -> the response text.
Respond = Callable[[list[Message], dict], str]


@dataclass
class Turn:
    messages: list[Message]
    response: str
    reward: float
    feedback: str


@dataclass
class Episode:
    task: str
    seed: int
    info: dict[str, Any]
    turns: list[Turn] = field(default_factory=list)
    success: bool = False
    image: np.ndarray | None = None

    @property
    def total_reward(self) -> float:
        return sum(t.reward for t in self.turns)


def play_episode(preset: TaskPreset, seed: int, respond: Respond, prompt_style: str | None = None,
                 **env_overrides: Any) -> Episode:
    """One episode: prompt, answer, verify, and revise with the feedback until solved or out of attempts."""
    env = preset.make_env(render_mode="rgb_array", **env_overrides)
    prompt = preset.make_prompt(prompt_style)
    try:
        observation, info = env.reset(seed=seed)
        episode = Episode(preset.name, seed, dict(info), image=env.render())
        messages = prompt.first_turn(observation, info)
        while True:
            response = respond(messages, info)
            observation, reward, terminated, truncated, info = env.step(response)
            episode.turns.append(Turn(messages, response, float(reward), info["feedback"]))
            if terminated or truncated:
                episode.success = bool(info["success"])
                return episode
            messages = prompt.next_turn(messages, response, observation, info)
    finally:
        env.close()


def message_text(message: Message) -> str:
    """The text of a chat message, with images shown as [image]."""
    return text_of(message["content"], "\n", image="[image]")
