"""V-IRL navigation: follow route instructions through city streets, as text (V-IRL-L) or with
street-view images (V-IRL-VL)."""

import gymnasium as gym

from shiftlab.tasks.virl.env import VirlEnv
from shiftlab.tasks.virl.task import ENV_ID, PRESETS, Virl

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=VirlEnv)

__all__ = ["ENV_ID", "PRESETS", "Virl", "VirlEnv"]
