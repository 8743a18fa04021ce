"""Stable seeds for procedural generation: the same parts give the same seed on every platform and
run (Python's built-in hash() is salted per process, so it cannot be used)."""

from __future__ import annotations

import hashlib

import numpy as np

WORLD_VERSION = 1  # bump when generation changes, so cached worlds and exported data are not mixed up


def stable_seed(*parts: object) -> int:
    text = "|".join(map(str, (WORLD_VERSION, *parts)))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def rng(*parts: object) -> np.random.Generator:
    """An independent generator per purpose, e.g. rng("new_york", 0, "streets")."""
    return np.random.Generator(np.random.PCG64(stable_seed(*parts)))
