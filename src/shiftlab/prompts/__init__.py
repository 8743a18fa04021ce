"""Prompt styles by name: how observations and feedback become chat messages for a policy."""

from __future__ import annotations

from typing import Any, Protocol

from shiftlab.prompts.general_points import GeneralPointsPrompt
from shiftlab.prompts.messages import Message
from shiftlab.prompts.virl import VirlPrompt


class PromptStyle(Protocol):
    """What the rollout runner needs from a prompt: the first conversation, and the next one."""

    def first_turn(self, observation: Any, info: dict) -> list[Message]: ...

    def next_turn(self, messages: list[Message], response: str, observation: Any, info: dict) -> list[Message]: ...


PROMPT_STYLES: dict[str, PromptStyle] = {
    "general-points": GeneralPointsPrompt(),
    "general-points/example": GeneralPointsPrompt(example=True),
    "virl": VirlPrompt(),
    "virl/example": VirlPrompt(example=True),
}


def get_prompt(name: str) -> PromptStyle:
    try:
        return PROMPT_STYLES[name]
    except KeyError:
        raise KeyError(f"unknown prompt style {name!r}; known: {', '.join(PROMPT_STYLES)}") from None


__all__ = ["PROMPT_STYLES", "GeneralPointsPrompt", "Message", "PromptStyle", "VirlPrompt", "get_prompt"]
