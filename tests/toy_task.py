"""A toy verifiable task for RL tests: learnable by a tiny random model in a few dozen steps.

The reply is scored by the share of its characters that are digits: a dense, checkable reward that a
freshly initialised model already earns a little of, so RL has signal from the first step. Two
attempts; the verifier's feedback goes into the second, as in the real tasks. It arrives the way any
task from outside shiftlab does, a `Task` subclass and `register_task`; `registered()` adds it for one
test and removes it afterwards, so no other test sees it.
"""

from __future__ import annotations

import contextlib

import gymnasium as gym

from shiftlab.messages import revision_turn, user_turn
from shiftlab.task import Task, TaskPreset, constructor_options, register_task, unregister_task

PRESET = "toy/digits"


def digit_share(text: str) -> float:
    return sum(c.isdigit() for c in text) / len(text) if text else 0.0


class DigitsEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, max_attempts: int = 2, threshold: float = 0.5):
        self.max_attempts, self.threshold = max_attempts, threshold
        self.observation_space = gym.spaces.Text(64)
        self.action_space = gym.spaces.Text(4096)
        self._attempts = 0
        self._task = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._task = int(self.np_random.integers(1, 100))
        self._attempts = self.max_attempts
        return f"Task {self._task}: reply with digits only.", {"task": self._task, "attempts_left": self._attempts}

    def step(self, action: str):
        share = digit_share(str(action))
        self._attempts -= 1
        success = share >= self.threshold
        info = {"task": self._task, "attempts_left": self._attempts, "success": success,
                "outcome": "correct" if success else "wrong",
                "feedback": "Correct." if success else f"Only {share:.0%} of your reply was digits."}
        return "", float(share), success, not success and self._attempts == 0, info


class DigitsPrompt:
    def first_turn(self, observation, info):
        return user_turn(observation)

    def next_turn(self, messages, response, observation, info):
        return revision_turn(messages, response, info["feedback"] + " Try again.")


class Digits(Task):
    name = "toy-digits"
    presets = (TaskPreset(PRESET, "toy-digits", {}, "id", "reply with digits (RL tests)"),)

    def make_env(self, **options):
        return DigitsEnv(**options)

    def env_options(self):
        return constructor_options(DigitsEnv)

    def prompt(self, style="default"):
        return DigitsPrompt()

    def expert_answer(self, info):
        return "1234"

    def random_answer(self, info, rng):
        return str(int(rng.integers(10))) + "x"

    def metrics(self, records, attempts):
        return {"mean_first_share": sum(r["turns"][0]["reward"] for r in records) / len(records)}


@contextlib.contextmanager
def registered():
    """The toy task in the registry for the duration of the block (a test), then gone again."""
    register_task(Digits())
    try:
        yield PRESET
    finally:
        unregister_task(Digits.name)
