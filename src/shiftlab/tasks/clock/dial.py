"""The arithmetic of a clock face, shared by the environment, the verifier, the expert and the prompts,
so that they cannot disagree about what the clock shows."""

from __future__ import annotations

MIN_DIAL, MAX_DIAL = 2, 1000
MAX_OFFSET = 1_000_000


def first_hour(zero_based: bool) -> int:
    """The smallest number on the dial: 0 when zero-based (0..23), else 1 (1..12, with 12 at the top)."""
    return 0 if zero_based else 1


def last_hour(dial: int, zero_based: bool) -> int:
    return first_hour(zero_based) + dial - 1


def on_dial(hour: int, dial: int, zero_based: bool) -> bool:
    return first_hour(zero_based) <= hour <= last_hour(dial, zero_based)


def time_after(start: int, offset: int, dial: int, zero_based: bool) -> int:
    """What the clock shows `offset` hours after it showed `start`."""
    first = first_hour(zero_based)
    return (start - first + offset) % dial + first


def wraps(start: int, offset: int, dial: int, zero_based: bool) -> int:
    """How often the hand goes from the last number back to the first on the way: the number of
    whole dials to take off the plain sum `start + offset`."""
    return (start - first_hour(zero_based) + offset) // dial


def hours(count: int) -> str:
    return "1 hour" if count == 1 else f"{count} hours"


def dial_words(dial: int, zero_based: bool) -> str:
    return f"a {dial}-hour dial numbered {first_hour(zero_based)} to {last_hour(dial, zero_based)}"


def question(start: int, offset: int, dial: int, zero_based: bool) -> str:
    """The episode in one sentence: the observation, and the opening of every prompt."""
    return (f"A clock has {dial_words(dial, zero_based)}. It shows {start}. "
            f"What does it show {hours(offset)} later?")
