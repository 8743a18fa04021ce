"""Shared by the test suites: an arithmetic oracle written independently of the library, and the
hypothesis settings that keep property tests reproducible and fast on CI."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, settings

OPS = ("+", "-", "*", "/")
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def fast(examples: int) -> settings:
    """Derandomized (the same examples on every run), no deadline (CI machines are slow)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def combine(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    """Exact a op b; None for a division by zero."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return None if b == 0 else a / b


def tree_value(tree) -> Fraction | None:
    """Exact value of a number or an (op, left, right) tree; None if it divides by zero anywhere."""
    if not isinstance(tree, tuple):
        return Fraction(tree)
    op, left, right = tree
    a, b = tree_value(left), tree_value(right)
    return None if a is None or b is None else combine(op, a, b)
