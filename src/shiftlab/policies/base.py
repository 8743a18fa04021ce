"""The policy interface: a batch of conversations in, one response per conversation out.

Local models also return the generated token ids and their log-probabilities, and the prompt exactly
as the model read it (its token ids, its images' inputs), which RL needs to score each answer again;
API and oracle policies leave them empty. A request carries the environment's `info` as well, for oracle
policies (the task's expert); model policies must only read the messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shiftlab.messages import Message


@dataclass(frozen=True)
class Request:
    task: str
    messages: Sequence[Message]
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()
    prompt_ids: tuple[int, ...] = ()  # without padding
    # The request's own rows of the batch's image inputs (pixel values, image sizes, ...), on the CPU.
    prompt_extras: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Policy(Protocol):
    name: str

    def generate(self, requests: Sequence[Request]) -> list[Response]: ...
