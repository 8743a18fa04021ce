"""The expert's answer, and the random baseline's, in the response format."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np


def working(start: int, offset: int, dial: int, turns: int, time: int) -> str:
    """The sum, then the whole dials taken off it: "9+7=16, 16-12=4"; "9+437=446, 446-37*12=2"."""
    total = start + offset
    text = f"{start}+{offset}={total}"
    if turns == 1:
        text += f", {total}-{dial}={time}"
    elif turns > 1:
        text += f", {total}-{turns}*{dial}={time}"
    return text


def format_answer(working_text: str, time: int) -> str:
    """The response format the prompts ask for: the working first, then the answer key."""
    return json.dumps({"sum": working_text, "time": time})


def expert_answer(info: Mapping) -> str:
    """The right time for the question in an env `info` dict, with the working that reaches it."""
    time = int(info["time_after"])
    return format_answer(working(info["start"], info["offset"], info["dial"], info["wraps"], time), time)


def random_answer(info: Mapping, rng: np.random.Generator) -> str:
    """A well-formed guess: the sum written out and any number on the dial, right one time in `dial`."""
    time = int(info["first"]) + int(rng.integers(info["dial"]))
    return format_answer(f"{info['start']}+{info['offset']}", time)
