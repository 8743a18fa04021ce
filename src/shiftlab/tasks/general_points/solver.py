"""Exact solver: every formula that combines a hand's numbers into the target.

A formula uses each number once with + - * / and parentheses. Arithmetic is exact (ints and
Fractions), so 8/(3-8/3) counts as 24, which float evaluation misses.

Speed comes from two ideas. Expression tables of sub-hands (value -> expression trees) are memoised
on the sorted numbers, so the handful of 1-, 2- and 3-number tables are shared by every hand. The top
level is never enumerated: for each split of the hand into a left and a right part, the right-hand
value that would reach the target is computed and looked up in the right part's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import cache, lru_cache
from itertools import combinations

Number = int | Fraction
# A tree is a leaf number or (op, left, right).
Tree = int | tuple

OPERATORS = ("+", "-", "*", "/")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_LEAF = 3


def _div(a: Number, b: Number) -> Number:
    """Exact quotient, kept as an int when it is whole (ints hash and compare far faster)."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b if a % b == 0 else Fraction(a, b)
    quotient = Fraction(a) / b
    return int(quotient) if quotient.denominator == 1 else quotient


def _apply(op: str, a: Number, b: Number) -> Number | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return None if b == 0 else _div(a, b)


def _splits(hand: tuple[int, ...]) -> Iterable[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every distinct ordered split of a sorted multiset into two non-empty sorted parts."""
    n = len(hand)
    seen = set()
    for size in range(1, n):
        for left_idx in combinations(range(n), size):
            left = tuple(hand[i] for i in left_idx)
            if left in seen:
                continue
            seen.add(left)
            chosen = set(left_idx)
            yield left, tuple(hand[i] for i in range(n) if i not in chosen)


@cache
def _table(hand: tuple[int, ...]) -> dict[Number, list[Tree]]:
    """value -> every expression tree over exactly these numbers (sorted tuple)."""
    if len(hand) == 1:
        return {hand[0]: [hand[0]]}
    table: dict[Number, list[Tree]] = {}
    for left, right in _splits(hand):
        right_table = _table(right)
        for a, a_trees in _table(left).items():
            for b, b_trees in right_table.items():
                for op in OPERATORS:
                    value = _apply(op, a, b)
                    if value is None:
                        continue
                    bucket = table.setdefault(value, [])
                    bucket.extend((op, x, y) for x in a_trees for y in b_trees)
    return table


def _solve_right(op: str, a: Number, target: int) -> list[Number] | None:
    """The values b with `a op b == target`; None stands for 'every b'."""
    if op == "+":
        return [target - a]
    if op == "-":
        return [a - target]
    if op == "*":
        if a == 0:
            return None if target == 0 else []
        return [_div(target, a)]
    if target == 0:
        return None if a == 0 else []
    return [] if a == 0 else [_div(a, target)]


def _solve_left(op: str, b: Number, target: int) -> list[Number] | None:
    """The values a with `a op b == target`; None stands for 'every a'."""
    if op == "+":
        return [target - b]
    if op == "-":
        return [target + b]
    if op == "*":
        if b == 0:
            return None if target == 0 else []
        return [_div(target, b)]
    return [] if b == 0 else [target * b]


@lru_cache(maxsize=65536)
def _solution_trees(hand: tuple[int, ...], target: int) -> tuple[Tree, ...]:
    if len(hand) == 1:
        return (hand[0],) if hand[0] == target else ()
    trees: list[Tree] = []
    for left, right in _splits(hand):
        left_table, right_table = _table(left), _table(right)
        # Walk the smaller table and look the partner value up in the larger one.
        walk_left = len(left_table) <= len(right_table)
        walked, looked_up = (left_table, right_table) if walk_left else (right_table, left_table)
        solve = _solve_right if walk_left else _solve_left
        for known, known_trees in walked.items():
            for op in OPERATORS:
                wanted = solve(op, known, target)
                for other in looked_up.keys() if wanted is None else wanted:
                    other_trees = looked_up.get(other)
                    if not other_trees or (op == "/" and (other if walk_left else known) == 0):
                        continue
                    pairs = ((known_trees, other_trees) if walk_left else (other_trees, known_trees))
                    trees.extend((op, x, y) for x in pairs[0] for y in pairs[1])
    return tuple(trees)


def _format(tree: Tree) -> tuple[str, int]:
    """Render with the fewest parentheses that keep the value: a+(b+c) prints as a+b+c."""
    if not isinstance(tree, tuple):
        return str(tree), _LEAF
    op, left, right = tree
    prec = _PRECEDENCE[op]
    left_text, left_prec = _format(left)
    right_text, right_prec = _format(right)
    if left_prec < prec:
        left_text = f"({left_text})"
    if right_prec < prec or (right_prec == prec and op in "-/"):
        right_text = f"({right_text})"
    return f"{left_text}{op}{right_text}", prec


def format_tree(tree: Tree) -> str:
    return _format(tree)[0]


@lru_cache(maxsize=65536)
def _solutions(hand: tuple[int, ...], target: int) -> tuple[str, ...]:
    texts = {format_tree(tree) for tree in _solution_trees(hand, target)}
    return tuple(sorted(texts, key=lambda s: (len(s), s)))


def solutions(numbers: Sequence[int], target: int = 24) -> tuple[str, ...]:
    """Every distinct formula (fewest parentheses, shortest first) over `numbers` that equals `target`."""
    return _solutions(tuple(sorted(numbers)), int(target))


def clear_caches() -> None:
    """Forget every memoised table (for cold-start measurements, or to release memory)."""
    for cached in (_table, _solution_trees, _solutions):
        cached.cache_clear()


def is_solvable(numbers: Sequence[int], target: int = 24) -> bool:
    return bool(_solution_trees(tuple(sorted(numbers)), int(target)))
