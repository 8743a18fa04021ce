"""GeneralPoints, the 24-points card game, as text (GP-L) and as an image of cards (GP-VL)."""

import gymnasium as gym

from shiftlab.tasks.general_points.env import GeneralPointsEnv
from shiftlab.tasks.general_points.expert import expert_answer, format_answer
from shiftlab.tasks.general_points.solver import is_solvable, solutions
from shiftlab.tasks.general_points.task import ENV_ID, PRESETS, GeneralPoints
from shiftlab.tasks.general_points.verifier import Outcome, RewardTable, Verdict, verify

# No TimeLimit wrapper: the environment ends its episodes itself when the attempts run out.
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=GeneralPointsEnv)

__all__ = [
    "ENV_ID",
    "PRESETS",
    "GeneralPoints",
    "GeneralPointsEnv",
    "Outcome",
    "RewardTable",
    "Verdict",
    "expert_answer",
    "format_answer",
    "is_solvable",
    "solutions",
    "verify",
]
