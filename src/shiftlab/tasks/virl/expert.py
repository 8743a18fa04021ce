"""The V-IRL expert: the ground-truth answer at the current rail point, in the response format."""

from __future__ import annotations

import json
from collections.abc import Mapping


def format_answer(observation: str, instruction: str, action: str) -> str:
    """The response format the prompts ask for: one JSON object with the three keys."""
    return json.dumps({"current observation": observation, "current instruction": instruction, "action": action})


def expert_answer(info: Mapping) -> str:
    """What a perfect navigator says at this point, from an env `info` dict."""
    return format_answer(info["oracle_observation"].strip(), info["current_instruction"], info["expert_action"])


def random_answer(info: Mapping, rng) -> str:
    """A well-formed guess: the true observation and instruction with a random action from the action space."""
    actions = info["action_space"]
    return format_answer(info["oracle_observation"].strip(), info["current_instruction"],
                         actions[int(rng.integers(len(actions)))])
