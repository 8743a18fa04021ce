"""Clock arithmetic: the clock shows an hour; what does it show some hours later?

It is addition modulo the dial, stated in words, so the shifts are cleanly separable: another dial
(24 hours numbered 0 to 23: does the model apply the stated dial or a memorised mod 12?) and many
more hours (the hand goes round dozens of times: does the procedure carry over to longer sums?).
An episode is one question; each `step` submits a whole response, which the verifier scores, until
the answer is correct or the attempts run out.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from shiftlab.tasks.clock.dial import (
    MAX_DIAL,
    MAX_OFFSET,
    MIN_DIAL,
    dial_words,
    first_hour,
    last_hour,
    on_dial,
    question,
    time_after,
    wraps,
)
from shiftlab.tasks.clock.render import render_clock
from shiftlab.tasks.clock.verifier import RewardTable, verify
from shiftlab.tasks.response import MAX_RESPONSE_CHARS

MIN_RESOLUTION, MAX_RESOLUTION = 64, 4096


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _offsets(value: Any) -> tuple[int, int]:
    """(low, high) from a tuple or a YAML list, each hour count from 0 to MAX_OFFSET, low <= high."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2 \
            or not all(_is_int(v) for v in value):
        raise ValueError(f"offsets must be two ints [low, high], not {value!r}")
    low, high = int(value[0]), int(value[1])
    if not 0 <= low <= high <= MAX_OFFSET:
        raise ValueError(f"offsets must satisfy 0 <= low <= high <= {MAX_OFFSET:,}, not [{low}, {high}]")
    return low, high


def _rewards(value: Any) -> RewardTable:
    """A RewardTable, or a mapping of its fields (from YAML); missing fields keep their defaults."""
    if value is None:
        return RewardTable()
    if isinstance(value, RewardTable):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - set(RewardTable.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown reward {unknown[0]!r}; rewards: {', '.join(RewardTable.__dataclass_fields__)}")
        return RewardTable(**value)
    raise ValueError(f"rewards must be a RewardTable or a mapping of its fields, not {value!r}")


class ClockEnv(gym.Env):
    """What a clock shows some hours after a given hour.

    Args:
        dial: hours on the face (2 to 1000).
        zero_based: number the dial 0..dial-1 (a 24-hour clock) instead of 1..dial (12 at the top).
        offsets: inclusive range [low, high] of the hours to add, drawn uniformly.
        max_attempts: scored answers per episode.
        rewards: reward per verifier outcome (a RewardTable or a mapping of its fields).
        resolution: side of the picture `render()` draws, in pixels (the observation is text).
        render_mode: None, "rgb_array" (a picture of the dial) or "ansi" (the question).
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 1}

    def __init__(
        self,
        dial: int = 12,
        zero_based: bool = False,
        offsets: Sequence[int] = (1, 30),
        max_attempts: int = 3,
        rewards: RewardTable | Mapping[str, float] | None = None,
        resolution: int = 256,
        render_mode: str | None = None,
    ):
        if not _is_int(dial) or not MIN_DIAL <= dial <= MAX_DIAL:
            raise ValueError(f"dial must be an int from {MIN_DIAL} to {MAX_DIAL} hours, not {dial!r}")
        if not isinstance(zero_based, (bool, np.bool_)):
            raise ValueError(f"zero_based must be true or false, not {zero_based!r}")
        if not _is_int(max_attempts) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive int, not {max_attempts!r}")
        if not _is_int(resolution) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise ValueError(f"resolution must be from {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels, not {resolution!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None, 'rgb_array' or 'ansi', not {render_mode!r}")
        self.dial = int(dial)
        self.zero_based = bool(zero_based)
        self.offsets = _offsets(offsets)
        self.max_attempts = int(max_attempts)
        self.rewards = _rewards(rewards)
        self.resolution = int(resolution)
        self.render_mode = render_mode
        self.first, self.last = first_hour(self.zero_based), last_hour(self.dial, self.zero_based)

        longest = question(self.last, self.offsets[1], self.dial, self.zero_based)
        self.observation_space = spaces.Text(min_length=1, max_length=len(longest) + 16, charset=string.printable)
        self.action_space = spaces.Text(min_length=0, max_length=MAX_RESPONSE_CHARS, charset=string.printable)
        self._start = self.first
        self._offset = self.offsets[0]
        self._attempts_left = 0
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new question. options={"start": hour, "offset": hours} sets it instead of drawing it."""
        super().reset(seed=seed)
        if options and options.get("start") is not None:
            self._start, self._offset = self._question_from_options(options)
        else:
            self._start = self.first + int(self.np_random.integers(self.dial))
            self._offset = int(self.np_random.integers(self.offsets[0], self.offsets[1] + 1))
        self._attempts_left = self.max_attempts
        self._done = False
        return self._observation(), self._info()

    def _question_from_options(self, options: dict) -> tuple[int, int]:
        start, offset = options["start"], options.get("offset", self.offsets[0])
        if not _is_int(start) or not on_dial(int(start), self.dial, self.zero_based):
            raise ValueError(f"options['start'] must be a number on {dial_words(self.dial, self.zero_based)}, "
                             f"not {start!r}")
        if not _is_int(offset) or not 0 <= offset <= MAX_OFFSET:
            raise ValueError(f"options['offset'] must be an int from 0 to {MAX_OFFSET:,}, not {offset!r}")
        return int(start), int(offset)

    def step(self, action: Any):
        if self._done:
            raise ResetNeeded("the episode is over (solved or out of attempts); call reset() first")
        verdict = verify(action, self._start, self._offset, self.dial, self.zero_based, rewards=self.rewards)
        self._attempts_left -= 1
        terminated = verdict.success
        truncated = not terminated and self._attempts_left == 0
        self._done = terminated or truncated
        info = self._info()
        info.update(feedback=verdict.feedback, outcome=verdict.outcome.value, answered=verdict.time)
        if self._done:
            info["success"] = terminated
        return self._observation(), verdict.reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return render_clock(self.dial, self.zero_based, self._start, self.resolution)
        if self.render_mode == "ansi":
            return self._observation()
        return None

    def _observation(self) -> str:
        return question(self._start, self._offset, self.dial, self.zero_based)

    def _info(self) -> dict[str, Any]:
        """The question's fields (what prompts state), then what the expert and the metrics read."""
        return {
            "dial": self.dial,
            "zero_based": self.zero_based,
            "first": self.first,
            "last": self.last,
            "start": self._start,
            "offset": self._offset,
            "time_after": time_after(self._start, self._offset, self.dial, self.zero_based),
            "wraps": wraps(self._start, self._offset, self.dial, self.zero_based),
            "attempts_left": self._attempts_left,
        }
