"""Chat messages as policies receive them: {"role", "content"}, the content a string for text, or a
list of parts with the image first for image observations (the shape Hugging Face processors and
OpenAI-style APIs both accept once the policy encodes the image)."""

from __future__ import annotations

from typing import Any

import numpy as np

Message = dict[str, Any]


def user_turn(text: str, observation: Any = None) -> list[Message]:
    """A fresh conversation: one user message, with the observation attached if it is an image."""
    if isinstance(observation, np.ndarray):
        return [{"role": "user", "content": [{"type": "image", "image": observation}, {"type": "text", "text": text}]}]
    return [{"role": "user", "content": text}]


def revision_turn(messages: list[Message], response: str, text: str) -> list[Message]:
    """The conversation after a rejected answer: the answer, then the verifier's word on it."""
    return [*messages, {"role": "assistant", "content": response}, {"role": "user", "content": text}]


def text_of(content: str | list[dict[str, Any]], separator: str = "", image: str | None = None) -> str:
    """A message content as plain text: a string as it is; parts joined by `separator`, an image part
    written as `image` (left out when None)."""
    if isinstance(content, str):
        return content
    pieces = []
    for part in content:
        if part.get("type") == "image":
            if image is not None:
                pieces.append(image)
        else:
            pieces.append(part.get("text") or "")
    return separator.join(pieces)
