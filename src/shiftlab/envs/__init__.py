"""Environments: pure, seeded gymnasium tasks that know nothing of models."""

import gymnasium as gym

GENERAL_POINTS_ID = "shiftlab/GeneralPoints-v0"

if GENERAL_POINTS_ID not in gym.registry:
    # No TimeLimit: the environment ends episodes itself when the attempts run out.
    gym.register(id=GENERAL_POINTS_ID, entry_point="shiftlab.envs.general_points.env:GeneralPointsEnv")
