"""Policies that need no model: the task's expert, and a random answer in the right format."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shiftlab.messages import text_of
from shiftlab.policies.base import Request, Response
from shiftlab.task import get_preset


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
            last = text_of(r.messages[-1]["content"], " ", image="") if r.messages else ""
            key = f"{self.seed}|{r.task}|{len(r.messages)}|{last}"
            rng = np.random.default_rng(list(key.encode()))
            out.append(Response(get_preset(r.task).random_answer(r.info, rng)))
        return out

