"""Score a clock answer and say what was wrong, without saying what is right.

A response must name a "time" (the last "time" key counts) that is a whole number on the dial;
otherwise it is illegal. A legal time is correct or wrong. Feedback repeats only what the question
and the answer already hold (the dial, the start, the hours added, the number given), so a revision
turn can correct the method but cannot copy the result. Any input, of any type and size, is scored
in bounded time and never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shiftlab.tasks.clock.answer import read_time
from shiftlab.tasks.clock.dial import dial_words, first_hour, hours, last_hour, on_dial, time_after
from shiftlab.tasks.response import MAX_RESPONSE_CHARS, response_text
from shiftlab.tasks.rewards import OutcomeRewards


class Outcome(str, Enum):
    CORRECT = "correct"
    WRONG_TIME = "wrong_time"
    ILLEGAL = "illegal"


@dataclass(frozen=True)
class RewardTable(OutcomeRewards):
    """Reward per outcome. Correct must pay more than either failure, so that no answer strategy
    earns more than knowing the time; an illegal answer costs more than a wrong one by default, so
    the format is learnt first."""

    correct: float = 1.0
    wrong_time: float = -1.0
    illegal: float = -2.0

    def __post_init__(self):
        super().__post_init__()
        if not self.correct > max(self.wrong_time, self.illegal):
            raise ValueError(f"reward correct ({self.correct}) must exceed wrong_time ({self.wrong_time}) and "
                             f"illegal ({self.illegal})")


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reward: float
    feedback: str
    time: int | None = None  # the whole number answered, when there was one

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.CORRECT


FORMAT_HINT = 'reply with a JSON object whose "time" is the number the clock shows'


def verify(response, start: int, offset: int, dial: int, zero_based: bool, *,
           rewards: RewardTable = RewardTable()) -> Verdict:
    """Score one response to "the clock shows `start`; what does it show `offset` hours later?"."""
    if not on_dial(start, dial, zero_based):
        raise ValueError(f"start {start} is not on {dial_words(dial, zero_based)}")
    text = response_text(response)

    def verdict(outcome: Outcome, feedback: str, time: int | None = None) -> Verdict:
        return Verdict(outcome, rewards[outcome], feedback, time)

    if len(text) > MAX_RESPONSE_CHARS:
        return verdict(Outcome.ILLEGAL, f"Your answer is too long ({len(text)} characters); {FORMAT_HINT}.")
    field = read_time(text)
    if field is None or not field.raw:
        return verdict(Outcome.ILLEGAL, f'I could not find a "time" in your answer; {FORMAT_HINT}.')
    first, last = first_hour(zero_based), last_hour(dial, zero_based)
    if field.value is None:
        if field.too_long:
            return verdict(Outcome.ILLEGAL, f"Your time is not on the dial, which is numbered {first} to {last}.")
        return verdict(Outcome.ILLEGAL, f'Your "time" ({field.raw}) is not a whole number; {FORMAT_HINT}.')
    given = field.value
    if not on_dial(given, dial, zero_based):
        return verdict(Outcome.ILLEGAL, f"{given} is not on the dial, which is numbered {first} to {last}.", given)
    if given == time_after(start, offset, dial, zero_based):
        return verdict(Outcome.CORRECT, f"Correct: {hours(offset)} after {start}, the clock shows {given}.", given)
    return verdict(Outcome.WRONG_TIME,
                   f"{given} is not what the clock shows {hours(offset)} after {start} on a {dial}-hour dial.", given)
