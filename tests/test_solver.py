"""The GeneralPoints solver against an independent brute-force oracle written here.

The oracle enumerates every expression tree over a hand: every distinct permutation of the numbers,
every binary tree shape over that order and every operator at every inner node, with exact
`fractions.Fraction` arithmetic. It shares no code with the solver; solution strings are checked with
an evaluator built on Python's `ast` module.
"""

from __future__ import annotations

import ast
import itertools
import random
import re
import time
from collections import Counter
from fractions import Fraction
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import OPS, PRECEDENCE, combine, fast

from shiftlab.tasks.general_points.solver import is_solvable, solutions

# --------------------------------------------------------------------------------------------------
# Oracle


@cache
def sequence_values(seq: tuple[int, ...]) -> frozenset[Fraction]:
    """Values of every tree shape with every operator choice over the numbers in exactly this order."""
    if len(seq) == 1:
        return frozenset({Fraction(seq[0])})
    out: set[Fraction] = set()
    for cut in range(1, len(seq)):
        for a in sequence_values(seq[:cut]):
            for b in sequence_values(seq[cut:]):
                for op in OPS:
                    value = combine(op, a, b)
                    if value is not None:
                        out.add(value)
    return frozenset(out)


def oracle_values(hand) -> set[Fraction]:
    """Every exact value some expression tree over the hand (each number once) can take."""
    out: set[Fraction] = set()
    for perm in set(itertools.permutations(hand)):
        out |= sequence_values(perm)
    return out


def oracle_reaches(hand, target: int) -> bool:
    """Whether some tree over the hand equals target: the same enumeration as oracle_values, except
    that the root is not materialised; for each order and cut, the partner value is looked up and the
    candidate is confirmed by recomputing it."""
    t = Fraction(target)
    if len(hand) == 1:
        return Fraction(hand[0]) == t
    for perm in set(itertools.permutations(hand)):
        for cut in range(1, len(perm)):
            left, right = sequence_values(perm[:cut]), sequence_values(perm[cut:])
            if len(left) <= len(right):
                for a in left:
                    if a == 0 and t == 0:
                        return True  # 0 * b
                    candidates = [t - a, a - t]
                    if a != 0:
                        candidates.append(t / a)
                    if a != 0 and t != 0:
                        candidates.append(a / t)
                    if any(b in right and combine(op, a, b) == t for b in candidates for op in OPS):
                        return True
            else:
                for b in right:
                    if b == 0 and t == 0:
                        return True  # a * 0
                    candidates = [t - b, t + b]
                    if b != 0:
                        candidates += [t / b, t * b]
                    if any(a in left and combine(op, a, b) == t for a in candidates for op in OPS):
                        return True
    return False


# Explicit trees, rendered with the fewest parentheses that keep the value, for the completeness check.


@cache
def sequence_renderings(seq: tuple[int, ...]) -> tuple[tuple[Fraction | None, str, int], ...]:
    """(value, text, precedence) of every tree over the numbers in this order; value None on x/0."""
    if len(seq) == 1:
        return ((Fraction(seq[0]), str(seq[0]), 3),)
    out = []
    for cut in range(1, len(seq)):
        for a, a_text, a_prec in sequence_renderings(seq[:cut]):
            for b, b_text, b_prec in sequence_renderings(seq[cut:]):
                for op in OPS:
                    prec = PRECEDENCE[op]
                    value = None if a is None or b is None else combine(op, a, b)
                    lt = f"({a_text})" if a_prec < prec else a_text
                    rt = f"({b_text})" if b_prec < prec or (b_prec == prec and op in "-/") else b_text
                    out.append((value, f"{lt}{op}{rt}", prec))
    return tuple(out)


def oracle_solution_texts(hand, target: int) -> set[str]:
    return {
        text
        for perm in set(itertools.permutations(hand))
        for value, text, _ in sequence_renderings(perm)
        if value == target
    }


# --------------------------------------------------------------------------------------------------
# Independent evaluation of formula strings


def ast_value(text: str) -> tuple[Fraction, list[int]]:
    """Exact value and the numbers of a formula made of ints, + - * / and parentheses."""
    numbers: list[int] = []

    def walk(node) -> Fraction:
        if isinstance(node, ast.BinOp):
            a, b = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            assert isinstance(node.op, ast.Div), ast.dump(node)
            assert b != 0, f"{text} divides by zero"
            return a / b
        assert isinstance(node, ast.Constant) and type(node.value) is int, ast.dump(node)
        numbers.append(node.value)
        return Fraction(node.value)

    return walk(ast.parse(text, mode="eval").body), numbers


def tokens_of(text: str) -> list:
    assert re.fullmatch(r"[0-9+\-*/()]+", text), text
    return [int(t) if t.isdigit() else t for t in re.findall(r"[0-9]+|[-+*/()]", text)]


hands = st.lists(st.integers(1, 13), min_size=1, max_size=4)
targets = st.integers(-5, 30)


# --------------------------------------------------------------------------------------------------
# is_solvable against the oracle


@fast(150)
@given(hand=hands, target=targets)
def test_is_solvable_matches_oracle(hand, target):
    assert is_solvable(hand, target) == (Fraction(target) in oracle_values(hand))


@fast(150)
@given(hand=hands, target=targets)
def test_fast_oracle_agrees_with_full_enumeration(hand, target):
    # Guards the table test below, which uses oracle_reaches for speed.
    assert oracle_reaches(hand, target) == (Fraction(target) in oracle_values(hand))


@fast(8)
@given(hand=st.lists(st.integers(1, 13), min_size=5, max_size=5), target=st.sampled_from([24, 0, 1, 7, 29]))
def test_is_solvable_matches_oracle_five_cards(hand, target):
    assert is_solvable(hand, target) == oracle_reaches(hand, target)


# --------------------------------------------------------------------------------------------------
# solutions


@fast(150)
@given(hand=hands, target=targets)
def test_solutions_are_correct_distinct_and_shortest_first(hand, target):
    found = solutions(hand, target)
    assert isinstance(found, tuple)
    assert len(set(found)) == len(found)
    lengths = [len(s) for s in found]
    assert lengths == sorted(lengths)
    assert bool(found) == is_solvable(hand, target)
    for text in found:
        value, numbers = ast_value(text)
        assert value == target, text
        assert Counter(numbers) == Counter(hand), text


@fast(40)
@given(
    hand=st.lists(st.integers(1, 13), min_size=1, max_size=4), target=st.sampled_from([24, 24, 0, 2, 10, 13])
)
def test_solutions_are_every_minimally_parenthesised_tree(hand, target):
    assert set(solutions(hand, target)) == oracle_solution_texts(hand, target)


def test_solutions_argument_order_does_not_matter():
    assert solutions([10, 2, 3, 4]) == solutions([4, 3, 2, 10]) == solutions((2, 3, 4, 10), 24)


def test_known_cases():
    assert solutions([8, 3, 8, 3]) == ("8/(3-8/3)",)
    assert solutions([8, 3, 8, 3], 24) == ("8/(3-8/3)",)
    assert is_solvable([8, 3, 8, 3])
    assert not is_solvable([1, 1, 1, 1])
    assert solutions([1, 1, 1, 1]) == ()
    assert is_solvable([4, 3, 2, 10])
    found = solutions([4, 3, 2, 10])
    assert "10*3-4-2" in found
    assert all(ast_value(s)[0] == 24 for s in found)
    assert solutions([5], 5) == ("5",)
    assert solutions([5], 24) == ()
    # Exact rational intermediate steps.
    assert is_solvable([1, 5, 5, 5])  # 5*(5-1/5)
    assert is_solvable([3, 3, 7, 7])  # 7*(3+3/7)
    assert "5*(5-1/5)" in solutions([1, 5, 5, 5])


# --------------------------------------------------------------------------------------------------
# The full table of four-card hands


ALL_HANDS = list(itertools.combinations_with_replacement(range(1, 14), 4))
ID_HANDS = list(itertools.combinations_with_replacement(range(1, 11), 4))


def test_full_table_of_four_card_hands():
    assert len(ALL_HANDS) == 1820 and len(ID_HANDS) == 715
    start = time.perf_counter()
    solvable = {hand: is_solvable(hand, 24) for hand in ALL_HANDS}
    assert time.perf_counter() - start < 15
    # A random sample against the full value-set oracle (all of it takes ~30 s).
    for hand in random.Random(2501_17161).sample(ALL_HANDS, 60):
        assert solvable[hand] == (24 in oracle_values(hand)), hand
    # Every hand against the (cross-checked) membership oracle.
    oracle = {hand: oracle_reaches(hand, 24) for hand in ALL_HANDS}
    mismatches = [hand for hand in ALL_HANDS if solvable[hand] != oracle[hand]]
    assert mismatches == []
    assert sum(oracle[h] for h in ID_HANDS) == sum(solvable[h] for h in ID_HANDS)
    # The counts known from the 24-game literature (1362 of the 1820 hands; 566 of the 715 without faces).
    assert sum(solvable.values()) == 1362
    assert sum(solvable[h] for h in ID_HANDS) == 566


@pytest.mark.parametrize("hand", [(1, 1, 1, 1), (13, 13, 13, 13), (1, 2, 3, 4)])
def test_solutions_count_matches_is_solvable(hand):
    assert bool(solutions(hand)) == is_solvable(hand) == oracle_reaches(hand, 24)
