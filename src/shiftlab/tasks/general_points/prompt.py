"""Prompts for GeneralPoints: the task statement, and the revision turn after a rejected answer.

Conversations are lists of chat messages ({"role", "content"}). Text-only prompts carry a string
content; image prompts carry a list of parts, the image first ({"type": "image", "image": array})
then the text, which is the shape both Hugging Face processors and OpenAI-style APIs expect once the
policy encodes the image. As in the paper, there is no system message, the image is attached to the
first user message only, and every rejected answer is followed by the verifier's feedback, so the
context grows as [task, answer 1, feedback 1, answer 2, ...].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftlab.messages import Message, revision_turn, user_turn
from shiftlab.tasks.general_points.cards import RANKS, face_card_rule, rank_value
from shiftlab.tasks.general_points.expert import format_answer
from shiftlab.tasks.general_points.solver import solutions

# Hands tried, in order, for the worked example of the `example` style; the first one solvable
# under the active rule and target is shown.
_EXAMPLE_HANDS = (("4", "3", "2", "K"), ("5", "7", "A", "Q"), ("9", "6", "8", "J"), ("2", "3", "10", "A"))


@dataclass(frozen=True)
class GeneralPointsPrompt:
    """The GeneralPoints conversation. `example=True` adds a worked example (useful for API models
    that have not been fine-tuned on the format, like the paper's `_EG` prompts). `compact=True`
    states the same rules and answer format in about a third of the tokens, the hand last: for small
    models trained from scratch, where the prompt is most of every forward pass."""

    example: bool = False
    compact: bool = False

    def task_text(self, info: Mapping, image: bool) -> str:
        if self.compact:
            return _compact_text(info, image)
        n, target = len(info["cards"]), info["target"]
        rule = face_card_rule(info["face_cards_as_ten"])
        if image:
            where = f"The image shows {n} playing cards on a table."
            cards_line = ""
            cards_field = f"the {n} cards you see, by rank"
        else:
            where = f"You are dealt {n} playing cards."
            cards_line = f"\nCards: {', '.join(info['cards'])}\n"
            cards_field = f"the {n} cards, by rank"
        lines = [
            f"{where} Build a formula that equals {target} from the numbers the cards stand for.",
            "",
            "Rules:",
            f"- An A counts as 1, the cards 2 to 10 count as their number, and {rule}.",
            "- Use the number of every card exactly once.",
            "- Combine them with + - * / and parentheses only.",
            cards_line,
            "Reply with a JSON object with three keys:",
            f'- "cards": {cards_field}, written as "A", "2", ..., "10", "J", "Q" or "K"',
            '- "number": the number each card counts as, in the same order',
            f'- "formula": your formula, as a string ending with "={target}"',
        ]
        text = "\n".join(lines)
        if self.example:
            shown = self._example(info)
            if shown:
                text += f"\n\nExample answer for the cards {', '.join(shown[0])}:\n{shown[1]}"
            text += "\n\nOutput only the JSON object."
        return text

    @staticmethod
    def _example(info: Mapping) -> tuple[tuple[str, ...], str] | None:
        n, target, as_ten = len(info["cards"]), info["target"], info["face_cards_as_ten"]
        for hand in _EXAMPLE_HANDS:
            cards = tuple((hand * n)[:n]) if n > len(hand) else hand[:n]
            if not all(c in RANKS for c in cards):
                continue
            values = [rank_value(c, as_ten) for c in cards]
            found = solutions(values, target)
            if found and list(cards) != list(info["cards"]):
                return cards, format_answer(cards, values, f"{found[0]}={target}")
        return None

    def first_turn(self, observation: Any, info: Mapping) -> list[Message]:
        """The opening conversation for a fresh hand."""
        return user_turn(self.task_text(info, isinstance(observation, np.ndarray)), observation)

    def next_turn(self, messages: list[Message], response: str, observation: Any, info: Mapping) -> list[Message]:
        """The conversation after a rejected `response`: it and the verifier's feedback are appended."""
        return revision_turn(messages, response, revision_text(info["feedback"], self.compact))


def _compact_text(info: Mapping, image: bool) -> str:
    n, target = len(info["cards"]), info["target"]
    values = "J=Q=K=10" if info["face_cards_as_ten"] else "J=11, Q=12, K=13"
    hand = f"The image shows {n} cards." if image else f"Cards: {', '.join(info['cards'])}"
    return (f"Make {target} with each card once and + - * / ( ); A=1, {values}.\n"
            f"JSON keys: cards, number, formula.\n{hand}")


def revision_text(feedback: str, compact: bool = False) -> str:
    if compact:
        return f"Rejected. {feedback} Answer again."
    return f"Your answer was rejected. {feedback} Correct it and reply with the JSON object again."
