"""Clock arithmetic as a shiftlab task: its presets, prompt styles, metrics and pretraining data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shiftlab.metrics import rate
from shiftlab.task import Source, SupportQuestion, Task, TaskPreset
from shiftlab.tasks.clock.dial import first_hour, last_hour, time_after
from shiftlab.tasks.clock.env import ClockEnv
from shiftlab.tasks.clock.expert import expert_answer, random_answer
from shiftlab.tasks.clock.prompt import ClockPrompt

NAME = "clock"
ENV_ID = "shiftlab/Clock-v0"
TWELVE_HOUR = {"dial": 12, "zero_based": False}
TWENTY_FOUR_HOUR = {"dial": 24, "zero_based": True}


def _preset(name: str, shift: str, description: str, **env_kwargs: Any) -> TaskPreset:
    return TaskPreset(name, NAME, env_kwargs, shift, description)


# Training and in-distribution evaluation: a 12-hour dial and up to 30 hours, so the hand goes round
# at most three times. The rule shift states another dial; the length shift asks for far longer sums.
PRESETS = (
    _preset("clock", "id", "clock arithmetic on a 12-hour dial (1-12), adding 1-30 hours",
            offsets=(1, 30), **TWELVE_HOUR),
    _preset("clock/rule-ood", "rule", "clock arithmetic on a 24-hour dial numbered 0-23, adding 1-30 hours",
            offsets=(1, 30), **TWENTY_FOUR_HOUR),
    _preset("clock/length-ood", "length", "clock arithmetic on a 12-hour dial (1-12), adding 100-500 hours",
            offsets=(100, 500), **TWELVE_HOUR),
)

_PROMPTS = {"default": ClockPrompt(), "example": ClockPrompt(example=True)}


class Clock(Task):
    name = NAME
    presets = PRESETS
    env_id = ENV_ID
    env_class = ClockEnv
    prompts = _PROMPTS
    answer_key = "time"
    turn_keys = ("outcome", "feedback", "attempts_left", "answered")
    report_metrics = ("wrap_success_rate",)

    def expert_answer(self, info: Mapping) -> str:
        return expert_answer(info)

    def random_answer(self, info: Mapping, rng: np.random.Generator) -> str:
        return random_answer(info, rng)

    def metrics(self, records: Sequence[dict], attempts: int) -> dict[str, Any]:
        """Success apart for questions whose hand goes past the top (`wrap_success_rate`) and those
        it does not (`no_wrap_success_rate`): a model that only adds solves the second kind alone.
        On a dial other than 1-12, `twelve_hour_rate` is the share of first answers that are what a
        12-hour clock would show, among questions where that is wrong: the memorised rule at work."""
        out: dict[str, Any] = {}
        for key, selected in (("wrap_success_rate", lambda w: w > 0), ("no_wrap_success_rate", lambda w: w == 0)):
            chosen = [r for r in records if "wraps" in r["start"] and selected(r["start"]["wraps"])]
            if chosen:
                out[key] = rate(chosen, lambda r: r["success"])[0]
        misled = [r for r in records if r["turns"] and _twelve_hour_time(r["start"]) is not None]
        if misled:
            out["twelve_hour_rate"] = rate(
                misled, lambda r: r["turns"][0].get("answered") == _twelve_hour_time(r["start"]))[0]
        return out

    def pretraining_sources(self, episodes: int, images: bool) -> list[Source]:
        """Both kinds of dial with up to 30 hours, one with a revision turn; the task shows no images."""
        if images:
            return []
        return [Source(NAME, episodes // 2, TWELVE_HOUR), Source(NAME, episodes // 2, TWENTY_FOUR_HOUR),
                Source(NAME, episodes // 4, TWELVE_HOUR, revisions=1)]

    def support_questions(self, images: bool) -> list[SupportQuestion]:
        return [] if images else [_remainder, _next_hour]


def _twelve_hour_time(start: Mapping) -> int | None:
    """What a 1-12 clock would show for the question, when the dial is another and that answer is wrong."""
    if "dial" not in start or (start["dial"], start["zero_based"]) == (12, False):
        return None
    twelve = time_after(start["start"], start["offset"], 12, False)
    return None if twelve == start["time_after"] else twelve


def _remainder(rng: np.random.Generator) -> tuple[str, str, None]:
    divisor = int(rng.choice([12, 24, 7, 10, 60]))
    number = int(rng.integers(1, 20 * divisor))
    return f"Divide {number} by {divisor}: what is the remainder?", str(number % divisor), None


def _next_hour(rng: np.random.Generator) -> tuple[str, str, None]:
    dial, zero_based = ((12, False), (24, True))[int(rng.integers(2))]
    first, last = first_hour(zero_based), last_hour(dial, zero_based)
    hour = last if rng.random() < 0.5 else first + int(rng.integers(dial))
    dial_name = f"{dial}-hour clock" if not zero_based else f"{dial}-hour clock numbered {first} to {last}"
    return f"On a {dial_name}, what comes after {hour}?", str(time_after(hour, 1, dial, zero_based)), None
