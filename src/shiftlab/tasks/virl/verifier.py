"""Score one V-IRL answer: the action against the rail point's ground truth (virl.md §2.8).

Rewards (the paper's): +1 correct action; -1.5 when the answer's "current observation" gets the
intersection wrong; -1 for any other wrong action. Fixes, each with a flag for exact replication:
- Q2 the intersection check compares with the full oracle text (landmark + intersection); the
  original compared with the landmark-only text, so a correct "intersection" mention was punished
  (`intersection_from_landmark_only=True`);
- Q12 lenient reading: strict JSON or Python quotes, trailing commas, any case and spacing in the
  action, a missing "()" (`strict_parsing=True` keeps the original's exact regex and string compare);
- Q20 the format reminder in the feedback has real braces (`literal_double_braces=True` keeps "{{").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from shiftlab.tasks.response import MAX_RESPONSE_CHARS, last_match, response_text
from shiftlab.tasks.rewards import OutcomeRewards
from shiftlab.tasks.virl.rail import FORWARD, STOP, RailPoint

_STRICT_ACTION = re.compile(r'"action": "(.*?)"')
_STRICT_OBSERVATION = re.compile(r'"current observation": "(.*?)"')
_KEY = r"""["']?{key}["']?\s*:\s*(?:"([^"\n]*)"|'([^'\n]*)'|([^,"'\n}}{{]*))"""
_ACTION = re.compile(_KEY.format(key="action"), re.IGNORECASE)
_OBSERVATION = re.compile(_KEY.format(key="current observation"), re.IGNORECASE)
_TURN = re.compile(r"turn_direction\s*\(\s*['\"]?\s*([a-z ]+?)\s*['\"]?\s*\)")


class Outcome(str, Enum):
    CORRECT = "correct_action"
    WRONG_OBSERVATION = "wrong_observation"
    WRONG_ACTION = "wrong_action"


@dataclass(frozen=True)
class RewardTable(OutcomeRewards):
    correct_action: float = 1.0
    wrong_observation: float = -1.5
    wrong_action: float = -1.0


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reward: float
    feedback: str
    action: str | None

    @property
    def correct(self) -> bool:
        return self.outcome is Outcome.CORRECT


def _format_reminder(literal_double_braces: bool) -> str:
    open_, close = ("{{", "}}") if literal_double_braces else ("{", "}")
    return (
        f'{open_}"current observation": "...", "current instruction": "...", '
        f'"action": "one action from the action space"{close}'
    )


def _last_value(pattern: re.Pattern, text: str) -> str | None:
    match = last_match(pattern, text)
    if match is None:
        return None
    return next((g for g in match.groups() if g is not None), "").strip()


def normalize_action(action: str) -> str:
    """'Turn_Direction( North )' -> 'turn_direction(north)', 'forward' -> 'forward()'."""
    text = " ".join(action.strip().lower().split())
    match = _TURN.fullmatch(text)
    if match:
        return f"turn_direction({match.group(1)})"
    text = text.replace(" ", "")
    if text in ("forward", "stop"):
        return text + "()"
    return text


def verify(
    response,
    point: RailPoint,
    action_space: str,
    *,
    rewards: RewardTable = RewardTable(),
    strict_parsing: bool = False,
    intersection_from_landmark_only: bool = False,
    literal_double_braces: bool = False,
) -> Verdict:
    """Score an answer at one rail point. Never raises, whatever the response."""
    text = response_text(response)
    if len(text) > MAX_RESPONSE_CHARS:
        text = ""
    if strict_parsing:
        action, observation = _last_value(_STRICT_ACTION, text), _last_value(_STRICT_OBSERVATION, text)
        expected = point.action(action_space)
    else:
        action, observation = _last_value(_ACTION, text), _last_value(_OBSERVATION, text)
        action = normalize_action(action) if action is not None else None
        expected = normalize_action(point.action(action_space))
    if action == expected:
        return Verdict(Outcome.CORRECT, rewards[Outcome.CORRECT], "Correct action.", action)

    said_intersection = "intersection" in (observation or "")
    truth = point.landmark if intersection_from_landmark_only else point.oracle_text
    at_intersection = "intersection" in truth
    reminder = _format_reminder(literal_double_braces)
    if said_intersection and not at_intersection:
        feedback = f"You are not at any intersection. Please try again in the same format: {reminder}"
        return Verdict(Outcome.WRONG_OBSERVATION, rewards[Outcome.WRONG_OBSERVATION], feedback, action)
    if not said_intersection and at_intersection:
        feedback = f"You are at an intersection. Please try again in the same format: {reminder}"
        return Verdict(Outcome.WRONG_OBSERVATION, rewards[Outcome.WRONG_OBSERVATION], feedback, action)
    if action is None:
        feedback = f"I could not find an action in your answer. Reply in this format: {reminder}"
    else:
        feedback = f"Your action is incorrect. Please avoid this action and try again in the same format: {reminder}"
    return Verdict(Outcome.WRONG_ACTION, rewards[Outcome.WRONG_ACTION], feedback, action)


__all__ = ["FORWARD", "STOP", "Outcome", "RewardTable", "Verdict", "normalize_action", "verify"]
