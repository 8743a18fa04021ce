"""GeneralPoints as a shiftlab task: its presets, prompt styles, metrics and pretraining data."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from shiftlab.task import Source, SupportQuestion, Task, TaskPreset
from shiftlab.tasks.general_points.cards import RANKS, face_card_rule, rank_value
from shiftlab.tasks.general_points.env import GeneralPointsEnv
from shiftlab.tasks.general_points.expert import expert_answer, random_answer
from shiftlab.tasks.general_points.prompt import GeneralPointsPrompt

NAME = "general-points"
ENV_ID = "shiftlab/GeneralPoints-v0"
# Every preset asks for 24. Pretraining varies the target and the hand size under both rules; a study
# holds out the combinations its OOD evaluations pose (`Task.is_held_out`), so the base meets the
# shifted rule only with other targets or hand sizes.
PRETRAINING_TARGETS = (12, 18, 24, 30)
PRETRAINING_CARDS = (3, 4)


def _preset(name: str, shift: str, description: str, **env_kwargs: Any) -> TaskPreset:
    return TaskPreset(name, NAME, env_kwargs, shift, description)


# The paper's settings (arXiv 2501.17161, Sec. 5 and App. A.3): training and in-distribution
# evaluation count J/Q/K as 10 and show black suits; the rule shift counts them as 11/12/13 and deals
# at least one; the visual shift shows red suits.
PRESETS = (
    _preset("gp-l", "id", "GeneralPoints as text; J/Q/K count as 10", observation="text", face_cards_as_ten=True),
    _preset("gp-l/rule-ood", "rule", "GeneralPoints as text; J/Q/K count as 11/12/13, at least one dealt",
            observation="text", face_cards_as_ten=False),
    _preset("gp-vl", "id", "GeneralPoints as an image of black-suited cards; J/Q/K count as 10",
            observation="image", face_cards_as_ten=True, suit_color="black"),
    _preset("gp-vl/rule-ood", "rule", "GeneralPoints image, black suits; J/Q/K count as 11/12/13, at least one dealt",
            observation="image", face_cards_as_ten=False, suit_color="black"),
    _preset("gp-vl/visual-ood", "visual", "GeneralPoints image with red suits (unseen colour); J/Q/K count as 10",
            observation="image", face_cards_as_ten=True, suit_color="red"),
)

_PROMPTS = {"default": GeneralPointsPrompt(), "example": GeneralPointsPrompt(example=True),
            "compact": GeneralPointsPrompt(compact=True)}


class GeneralPoints(Task):
    name = NAME
    presets = PRESETS
    env_id = ENV_ID
    env_class = GeneralPointsEnv
    prompts = _PROMPTS
    answer_key = "formula"
    turn_keys = ("outcome", "feedback", "cards_correct", "attempts_left")
    report_metrics = ("recognition_accuracy",)
    corpus_options = MappingProxyType({"resolution": 64})  # the text does not depend on the image size
    problem_keys = ("observation", "face_cards_as_ten", "target", "num_cards", "suit_color")

    def expert_answer(self, info: Mapping) -> str:
        return expert_answer(info)

    def random_answer(self, info: Mapping, rng: np.random.Generator) -> str:
        return random_answer(info, rng)

    def metrics(self, records: Sequence[dict], attempts: int) -> dict[str, Any]:
        """Image tasks also score whether the model read the cards right, at its first answer."""
        first = [r["turns"][0] for r in records if r["turns"]]
        if first and all("cards_correct" in t for t in first):
            return {"recognition_accuracy": sum(t["cards_correct"] for t in first) / len(first)}
        return {}

    def pretraining_sources(self, episodes: int, images: bool) -> list[Source]:
        """As text: both rules with every target and hand size, and some episodes with a revision turn.
        As images: each suit colour under both rules."""
        if images:
            return [Source("gp-vl", episodes // 4, {"face_cards_as_ten": ten, "suit_color": color})
                    for ten in (True, False) for color in ("black", "red", "mixed")]
        sources = [Source("gp-l", episodes // 4, {"face_cards_as_ten": ten, "target": target, "num_cards": cards})
                   for ten in (True, False) for target in PRETRAINING_TARGETS for cards in PRETRAINING_CARDS]
        sources += [Source("gp-l", episodes // 4, {"face_cards_as_ten": ten, "target": PRETRAINING_TARGETS[1]},
                           revisions=1) for ten in (True, False)]
        return sources

    def support_questions(self, images: bool) -> list[SupportQuestion]:
        return [_read_cards] if images else [_arithmetic, _card_value, _hand_numbers]


def _arithmetic(rng: np.random.Generator) -> tuple[str, str, None]:
    a, b, c = (int(x) for x in rng.integers(1, 14, size=3))
    forms = [(f"{a}+{b}*{c}", a + b * c), (f"({a}+{b})*{c}", (a + b) * c), (f"{a}*{b}-{c}", a * b - c),
             (f"({a}-{b})*{c}", (a - b) * c), (f"{a}*{b}+{c}", a * b + c)]
    text, value = forms[int(rng.integers(len(forms)))]
    return f"What is {text}?", str(value), None


def _card_value(rng: np.random.Generator) -> tuple[str, str, None]:
    rank = RANKS[int(rng.integers(len(RANKS)))]
    ten = bool(rng.integers(2))
    return (f"If {face_card_rule(ten)}, what number does the card {rank} stand for?", str(rank_value(rank, ten)),
            None)


def _hand_numbers(rng: np.random.Generator) -> tuple[str, str, None]:
    """The first half of every answer on its own: copy a hand and give each card's number under a rule."""
    hand = [RANKS[int(i)] for i in rng.integers(len(RANKS), size=int(rng.integers(2, 6)))]
    ten = bool(rng.integers(2))
    numbers = [rank_value(rank, ten) for rank in hand]
    return (f"Cards: {', '.join(hand)}. If {face_card_rule(ten)}, which number does each card stand for?",
            json.dumps({"cards": hand, "number": numbers}), None)


def _read_cards(rng: np.random.Generator) -> tuple[str, str, Any]:
    color = ("black", "red", "mixed")[int(rng.integers(3))]
    env = GeneralPointsEnv(observation="image", face_cards_as_ten=True, suit_color=color, resolution=224)
    observation, info = env.reset(seed=int(rng.integers(2**31)))
    env.close()
    return "Which cards are on the table, from left to right?", ", ".join(info["cards"]), observation
