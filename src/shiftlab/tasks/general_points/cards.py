"""Card vocabulary of GeneralPoints: rank names, suits, and what a rank is worth under each rule."""

from __future__ import annotations

RANKS: tuple[str, ...] = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
FACE_RANKS: tuple[str, ...] = ("J", "Q", "K")

# Spades, hearts, diamonds, clubs: single letters keep the info dict and logs compact.
SUITS: tuple[str, ...] = ("S", "H", "D", "C")
RED_SUITS: tuple[str, ...] = ("H", "D")
BLACK_SUITS: tuple[str, ...] = ("S", "C")
SUITS_BY_COLOR: dict[str, tuple[str, ...]] = {"black": BLACK_SUITS, "red": RED_SUITS, "mixed": SUITS}


def rank_index(rank: str) -> int:
    """Position of a rank in RANKS plus one: A=1, 10=10, K=13."""
    return RANKS.index(rank) + 1


def rank_value(rank: str, face_cards_as_ten: bool) -> int:
    """The number a card stands for: J/Q/K are 10 in the training rule, 11/12/13 in the shifted rule."""
    index = rank_index(rank)
    return min(index, 10) if face_cards_as_ten else index


def face_card_rule(face_cards_as_ten: bool) -> str:
    """The rule in words, as prompts state it."""
    if face_cards_as_ten:
        return "J, Q and K each count as 10"
    return "J, Q and K count as 11, 12 and 13"
