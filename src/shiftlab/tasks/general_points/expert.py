"""The expert: a correct answer, in the response format, for any dealt hand."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from shiftlab.tasks.general_points.solver import solutions


def format_answer(cards: Sequence[str], numbers: Sequence[int], formula: str) -> str:
    """The response format the prompts ask for: one JSON object with cards, number and formula."""
    return json.dumps({"cards": list(cards), "number": list(numbers), "formula": formula})


def expert_answer(info: Mapping, rng: np.random.Generator | None = None) -> str:
    """Answer for the hand described by an env `info` dict.

    Without `rng` the shortest solution is used, so the answer is a pure function of the hand; with
    `rng` a solution is drawn uniformly, which gives SFT data more than one way to reach the target.
    """
    target = info["target"]
    found = solutions(info["values"], target)
    if not found:
        raise ValueError(f"the hand {list(info['cards'])} has no solution for target {target}")
    formula = found[0] if rng is None else found[int(rng.integers(len(found)))]
    return format_answer(info["cards"], info["values"], f"{formula}={target}")


def random_answer(info: Mapping, rng: np.random.Generator) -> str:
    """A well-formed guess: the cards' numbers in random order joined by random operators.

    It names the cards correctly and uses every number once, so the verifier's answer is about the
    value alone; a baseline that is right by luck now and then.
    """
    values = [int(v) for v in info["values"]]
    order = rng.permutation(len(values))
    operators = rng.choice(["+", "-", "*", "/"], size=len(values) - 1)
    formula = str(values[order[0]])
    for op, i in zip(operators, order[1:], strict=True):
        formula += f"{op}{values[i]}"
    return format_answer(info["cards"], info["values"], f"{formula}={info['target']}")
