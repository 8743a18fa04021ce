"""Policies that need no model: the task's expert, and a random answer in the right format."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shiftlab.policies.base import Request, Response
from shiftlab.tasks import get_preset


class ExpertPolicy:
    """Always right: the expert of each request's task, reading the environment's info."""

    name = "expert"

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [Response(get_preset(r.task).expert_answer(r.info)) for r in requests]


class RandomPolicy:
    """Well-formed guesses; the baseline that knows the answer format but not the task. Each request
    draws from a generator seeded by (seed, task, request content), so a rerun or a resumed run gives
    the same answers whatever the batching."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = f"random:{self.seed}"

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            key = f"{self.seed}|{r.task}|{len(r.messages)}|{_last_text(r.messages)}"
            rng = np.random.default_rng(list(key.encode()))
            out.append(Response(get_preset(r.task).random_answer(r.info, rng)))
        return out


def _last_text(messages) -> str:
    content = messages[-1]["content"] if messages else ""
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content)
