"""Score a GeneralPoints answer with the paper's reward table and say what was wrong.

Differences from the original verifier, each a fix:
- exact rational arithmetic, so 8/(3-8/3) is 24 (float eval gave 23.999... and reward 0);
- one outcome per answer, not penalties summed into values outside the table (-4, -6, ...);
- tolerant reading: strict JSON or Python-style quotes, trailing commas, code fences, spaces in the
  formula, the typographic operators × ÷ −, a stated result ("=24");
- any input, of any size, is scored in bounded time and never raises.

Checks run in the original's order: the answer must contain a formula, then (image tasks) the cards
must be recognised, then the formula must be well formed, use each card's number exactly once, and
equal the target. Partial credit needs real progress: every card's number used once and only the
closing parentheses missing, so that closing them gives the target (see `_only_closing_left`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from shiftlab.tasks.general_points import formula as fm
from shiftlab.tasks.general_points.answer import extract, normalize_rank
from shiftlab.tasks.response import MAX_RESPONSE_CHARS, response_text
from shiftlab.tasks.rewards import OutcomeRewards


class Outcome(str, Enum):
    CORRECT = "correct"
    PARTIAL = "partial"
    WRONG_VALUE = "wrong_value"
    WRONG_CARDS = "wrong_cards"
    WRONG_NUMBERS = "wrong_numbers"
    ILLEGAL_FORMULA = "illegal_formula"


@dataclass(frozen=True)
class RewardTable(OutcomeRewards):
    """Reward per outcome; the defaults are the paper's (arXiv 2501.17161, App. A.3)."""

    correct: float = 5.0
    partial: float = 1.0
    wrong_value: float = -1.0
    wrong_cards: float = -1.5
    wrong_numbers: float = -2.0
    illegal_formula: float = -3.0

    def __post_init__(self):
        super().__post_init__()
        if self.partial > self.correct:
            raise ValueError(f"partial ({self.partial}) must not exceed correct ({self.correct}): partial credit "
                             "is an advance on the correct reward")


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reward: float
    feedback: str
    formula: str | None = None
    cards_correct: bool | None = None  # None when the cards were not checked

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.CORRECT


FORMAT_HINT = 'answer with a JSON object with the keys "cards", "number" and "formula"'


def _counts(numbers: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for n in numbers:
        counts[n] = counts.get(n, 0) + 1
    return counts


def _times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


def _listing(numbers: list[int], verb: str) -> str:
    return f"{', '.join(map(str, numbers))} {'is' if len(numbers) == 1 else 'are'} {verb}"


def _number_problems(used: Sequence[int], values: Sequence[int]) -> list[str]:
    """What is wrong with the numbers a formula uses, compared with the cards' numbers."""
    if sorted(used) == sorted(values):
        return []
    have, want = _counts(values), _counts(used)
    problems = []
    foreign = [n for n in want if n not in have]
    if foreign:
        problems.append(_listing(foreign, "not among the cards"))
    for n, k in want.items():
        if n in have and k != have[n]:
            problems.append(f"{n} is used {_times(k)} but dealt {_times(have[n])}")
    unused = [n for n in have if n not in want]
    if unused:
        problems.append(_listing(unused, "not used"))
    return problems


def check_cards(listed: Sequence[str] | None, cards: Sequence[str]) -> bool:
    """Whether the listed card names are the dealt ranks, in any order."""
    if listed is None or len(listed) != len(cards):
        return False
    return sorted(map(str, (normalize_rank(c) for c in listed))) == sorted(cards)


def verify(
    response,
    values: Sequence[int],
    target: int = 24,
    *,
    cards: Sequence[str] | None = None,
    check_recognition: bool = False,
    rewards: RewardTable = RewardTable(),
) -> Verdict:
    """Score one response against a hand.

    values: each card's number under the active rule. cards: the dealt rank names, needed when
    check_recognition is set (image tasks, where reading the cards is part of the task).
    """
    text = response_text(response)

    def verdict(outcome: Outcome, feedback: str, formula: str | None = None, cards_ok: bool | None = None):
        return Verdict(outcome, rewards[outcome], feedback, formula, cards_ok)

    if len(text) > MAX_RESPONSE_CHARS:
        return verdict(Outcome.ILLEGAL_FORMULA, f"Your answer is too long ({len(text)} characters); {FORMAT_HINT}.",
                       cards_ok=False if check_recognition else None)
    answer = extract(text)
    cards_ok = None
    if check_recognition:
        if cards is None:
            raise ValueError("check_recognition needs the dealt cards")
        cards_ok = check_cards(answer.cards, cards)
    if answer.formula is None:
        return verdict(Outcome.ILLEGAL_FORMULA, f"I could not find a formula in your answer; {FORMAT_HINT}.",
                       cards_ok=cards_ok)
    formula = answer.formula
    if cards_ok is False:
        said = "did not list them" if answer.cards is None else f"listed {', '.join(answer.cards)[:200]}"
        return verdict(Outcome.WRONG_CARDS, f"You misread the cards in the image (you {said}).", formula, cards_ok)

    parsed = fm.parse(formula)
    if parsed.error:
        return verdict(Outcome.ILLEGAL_FORMULA, f"Your formula is not valid: {parsed.error}.", formula, cards_ok)
    if not parsed.complete:
        if _only_closing_left(parsed, values, target):
            return verdict(Outcome.PARTIAL,
                           f"Your formula is unfinished ({parsed.unfinished}), but closing it would make it correct.",
                           formula, cards_ok)
        problems = _number_problems(parsed.numbers, values)
        also = f"; also, {'; '.join(problems)}" if problems else ""
        return verdict(Outcome.ILLEGAL_FORMULA, f"Your formula is unfinished: {parsed.unfinished}{also}.",
                       formula, cards_ok)
    problems = _number_problems(parsed.numbers, values)
    if problems:
        return verdict(Outcome.WRONG_NUMBERS,
                       f"Your formula must use each card's number exactly once: {'; '.join(problems)}.",
                       formula, cards_ok)
    value = parsed.value
    if value is None:
        return verdict(Outcome.WRONG_VALUE, "Your formula divides by zero.", formula, cards_ok)
    if value == target:
        return verdict(Outcome.CORRECT, f"Correct: {formula} = {target}.", formula, cards_ok)
    return verdict(Outcome.WRONG_VALUE, f"Your formula equals {fm.format_value(value)}, not {target}.",
                   formula, cards_ok)


def _only_closing_left(parsed: fm.ParsedFormula, values: Sequence[int], target: int) -> bool:
    """The partial-credit rule: every card's number is used exactly once and appending the missing
    ')' gives the target. Anything less (an open '(', a trailing operator, a missing number) is no
    progress a verifier can vouch for, and paying it would reward degenerate answers."""
    if not parsed.open_parens or sorted(parsed.numbers) != sorted(values):
        return False
    closed = fm.parse("".join(map(str, parsed.tokens)) + ")" * parsed.open_parens)
    return closed.complete and closed.value == target
