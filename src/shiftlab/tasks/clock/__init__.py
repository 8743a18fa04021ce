"""Clock arithmetic: what a clock shows some hours later, on a stated dial (addition modulo the dial)."""

import gymnasium as gym

from shiftlab.tasks.clock.env import ClockEnv
from shiftlab.tasks.clock.expert import expert_answer, random_answer
from shiftlab.tasks.clock.task import ENV_ID, PRESETS, Clock
from shiftlab.tasks.clock.verifier import Outcome, RewardTable, Verdict, verify

# No TimeLimit wrapper: the environment ends its episodes itself when the attempts run out.
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=ClockEnv)

__all__ = [
    "ENV_ID",
    "PRESETS",
    "Clock",
    "ClockEnv",
    "Outcome",
    "RewardTable",
    "Verdict",
    "expert_answer",
    "random_answer",
    "verify",
]
