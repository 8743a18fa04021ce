"""Reinforcement learning with verifier rewards: `config` (the run's settings), `objectives` (the
tensor math of advantages and losses), `samples` (episodes as token batches), `trainer` (the loop).

Only `config` is imported here, so the CLI can describe the settings without loading torch.
"""

from shiftlab.training.rl.config import RLConfig

__all__ = ["RLConfig"]
