"""Environments: pure, seeded gymnasium tasks that know nothing of models."""

import gymnasium as gym

GENERAL_POINTS_ID = "shiftlab/GeneralPoints-v0"
VIRL_ID = "shiftlab/VIRL-v0"

# No TimeLimit wrappers: each environment ends its episodes itself when the attempts run out.
for _id, _entry in (
    (GENERAL_POINTS_ID, "shiftlab.envs.general_points.env:GeneralPointsEnv"),
    (VIRL_ID, "shiftlab.envs.virl.env:VirlEnv"),
):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
