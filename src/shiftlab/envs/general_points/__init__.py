"""GeneralPoints, the 24-points card game, as text (GP-L) and as an image of cards (GP-VL)."""

from shiftlab.envs.general_points.env import GeneralPointsEnv
from shiftlab.envs.general_points.expert import expert_answer, format_answer
from shiftlab.envs.general_points.solver import is_solvable, solutions
from shiftlab.envs.general_points.verifier import Outcome, RewardTable, Verdict, verify

__all__ = [
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
