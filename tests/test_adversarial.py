"""Hostile responses: the verifier answers every one with a Verdict from the table, quickly, never raising."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import fast

from shiftlab.tasks.general_points.verifier import Outcome, RewardTable, Verdict, verify
from shiftlab.tasks.response import MAX_RESPONSE_CHARS

HAND = [4, 3, 2, 10]
HAND_CARDS = ["4", "3", "2", "10"]
TABLE_VALUES = {RewardTable()[o] for o in Outcome}
TIME_LIMIT_S = 0.020


def formula(text: str) -> str:
    return '{"cards": ["4", "3", "2", "10"], "number": [4, 3, 2, 10], "formula": "' + text + '"}'


def fill(unit: str, tail: str = "", size: int = MAX_RESPONSE_CHARS - 1) -> str:
    """unit repeated up to just under the response limit, then tail."""
    return unit * ((size - len(tail)) // len(unit)) + tail


NASTY: dict[str, object] = {
    # Size.
    "1e6 open parens": "(" * 1_000_000,
    "repeated formula keys": ('formula": "' * 10_000)[:99_999],
    "200k x": "x" * 200_000,
    "just over the limit": formula("10*3-4-2") + " " * MAX_RESPONSE_CHARS,
    "just under the limit": " " * (MAX_RESPONSE_CHARS - 200) + formula("10*3-4-2"),
    "deep nesting, 200k": formula("(" * 100_000 + "1" + ")" * 100_000),
    "deep nesting, under the limit": formula("(" * 49_000 + "1" + ")" * 49_000),
    "deep nesting, under the formula limit": formula("(" * 240 + "10*3-4-2" + ")" * 240),
    "499 open parens": formula("(" * 499),
    "many formula keys": fill('"formula": "1",'),
    "many empty formula keys": fill("formula:,"),
    "formula key then spaces": "formula" + " " * 99_000,
    "key without colon": fill("Formula "),
    "ormula without F": fill("ormula:"),
    "many cards keys": fill('"cards": ["K"],'),
    "cards key, no bracket": fill("cards:["),
    "many number keys": fill('"number": [1],'),
    # Arithmetic.
    "9**9**9": formula("9**9**9"),
    "9^9^9": formula("9^9^9"),
    "5000 nines": formula("9" * 5000),
    "13 digits": formula("9" * 13),
    "12 digits": formula("999999999999*999999999999"),
    "huge product, hand numbers": formula("10*" * 120 + "4*3*2"),
    "1/0": formula("1/0"),
    "4/(3-3)": formula("4/(3-3)"),
    "1e308": formula("1e308"),
    "float": formula("4.0*3*2*10/10"),
    "unary minus": formula("-4+3+2+10+13"),
    "double minus": formula("4--3"),
    "python code": formula("__import__('os').system('true')"),
    "lambda": "{'formula': (lambda: 24)()}",
    "format string": formula("{0.__class__}"),
    # Characters.
    "NUL": formula("4*3\x00+2+10"),
    "NUL only": "\x00" * 1000,
    "control chars": formula("".join(map(chr, range(1, 32)))),
    "DEL and C1": formula("\x7f\x80\x9f"),
    "invalid utf-8": b'{"formula": "\xff\xfe\xc0\x80 4*3+2+10"}',
    "invalid utf-8, long": b"\xff" * 500_000,
    "truncated utf-8": b'{"formula": "10*3-4-2\xe2\x88"}',
    "correct bytes": formula("10*3-4-2").encode(),
    "bytearray": bytearray(formula("4*3+2+10").encode()),
    "lone surrogate": formula("\ud800"),
    "surrogate escape": b'{"formula": "\xff10*3"}'.decode("utf-8", "surrogateescape"),
    "arabic digits": formula("٤*٣*٢*١٠"),
    "fullwidth digits": formula("４*３*２*１０"),
    "superscript digits": formula("4³"),
    "emoji": formula("4️⃣*3*2😀"),
    "rtl marks": formula("\u202e10*3-4-2\u202c"),
    "zero width": formula("10\u200b*3-4-2"),
    "bom": "\ufeff" + formula("10*3-4-2"),
    "nbsp": formula("10\u00a0*\u00a03-4-2"),
    "combining": formula("1\u03030*3-4-2"),
    "math operators": formula("10∗3−4−2"),
    # Types.
    "None": None,
    "int": 24,
    "float type": 24.0,
    "list": ["formula", "10*3-4-2"],
    "dict": {"formula": "10*3-4-2"},
    "memoryview": memoryview(b'{"formula": "10*3-4-2"}'),
    "object": object(),
    # Structure.
    "empty": "",
    "whitespace": " \n\t" * 1000,
    "long cards list": '{"cards": [' + ", ".join(['"K"'] * 2_000) + '], "formula": "10*3-4-2"}',
    "long cards list, short items": '{"cards": ['
    + fill("K,", '], "formula": "10*3-4-2"}', MAX_RESPONSE_CHARS - 20),
    "nested cards": '{"cards": [[["4"], "3"], ["2", ["10"]]], "formula": "10*3-4-2"}',
    "unclosed cards": '{"cards": ["4", "3", "2", "10", "formula": "10*3-4-2"}',
    "cards with 10k-char item": '{"cards": ["' + "K" * 10_000 + '"], "formula": "10*3-4-2"}',
    "repeated keys": '{"formula": "10*3-4-2", "formula": "1", "formula": "10*3-4-2"}',
    "key in the value": '{"formula": "formula: 10*3-4-2"}',
    "unclosed quote": '{"formula": "10*3-4-2',
    "mixed quotes": "{\"formula': \"10*3-4-2'}",
    "equals only": formula("="),
    "many equals": formula("=" * 400),
    "equals chain": formula("24=" * 100 + "10*3-4-2"),
    "fences only": "```" * 10_000,
}

# Where the outcome is certain, say it.
EXPECTED = {
    "1e6 open parens": Outcome.ILLEGAL_FORMULA,
    "200k x": Outcome.ILLEGAL_FORMULA,
    "just over the limit": Outcome.ILLEGAL_FORMULA,
    "just under the limit": Outcome.CORRECT,
    "deep nesting, 200k": Outcome.ILLEGAL_FORMULA,
    "deep nesting, under the limit": Outcome.ILLEGAL_FORMULA,
    "deep nesting, under the formula limit": Outcome.CORRECT,
    "9**9**9": Outcome.ILLEGAL_FORMULA,
    "5000 nines": Outcome.ILLEGAL_FORMULA,
    "13 digits": Outcome.ILLEGAL_FORMULA,
    "12 digits": Outcome.WRONG_NUMBERS,
    "huge product, hand numbers": Outcome.WRONG_NUMBERS,
    "1/0": Outcome.WRONG_NUMBERS,
    "unary minus": Outcome.ILLEGAL_FORMULA,
    "python code": Outcome.ILLEGAL_FORMULA,
    "NUL": Outcome.ILLEGAL_FORMULA,
    "invalid utf-8": Outcome.ILLEGAL_FORMULA,
    "correct bytes": Outcome.CORRECT,
    "bytearray": Outcome.CORRECT,
    "lone surrogate": Outcome.ILLEGAL_FORMULA,
    "arabic digits": Outcome.ILLEGAL_FORMULA,
    "fullwidth digits": Outcome.ILLEGAL_FORMULA,
    "emoji": Outcome.ILLEGAL_FORMULA,
    "rtl marks": Outcome.ILLEGAL_FORMULA,
    "None": Outcome.ILLEGAL_FORMULA,
    "int": Outcome.ILLEGAL_FORMULA,
    "list": Outcome.ILLEGAL_FORMULA,
    "empty": Outcome.ILLEGAL_FORMULA,
    "repeated keys": Outcome.CORRECT,
}


def check(verdict) -> None:
    assert isinstance(verdict, Verdict)
    assert isinstance(verdict.outcome, Outcome)
    assert verdict.reward in TABLE_VALUES
    assert verdict.reward == RewardTable()[verdict.outcome]
    assert isinstance(verdict.feedback, str) and verdict.feedback.strip()
    assert verdict.formula is None or isinstance(verdict.formula, str)


def timed(response, **kwargs) -> tuple[Verdict, float]:
    best = float("inf")
    verdict = None
    for _ in range(3):
        start = time.perf_counter()
        verdict = verify(response, HAND, **kwargs)
        best = min(best, time.perf_counter() - start)
    return verdict, best


@pytest.mark.parametrize("name", list(NASTY))
def test_nasty_input(name):
    verdict, seconds = timed(NASTY[name])
    check(verdict)
    if name in EXPECTED:
        assert verdict.outcome is EXPECTED[name], verdict
    assert seconds < TIME_LIMIT_S, f"{seconds * 1000:.1f} ms"


@pytest.mark.parametrize("name", list(NASTY))
def test_nasty_input_with_recognition(name):
    verdict, seconds = timed(NASTY[name], cards=HAND_CARDS, check_recognition=True)
    check(verdict)
    if verdict.outcome is not Outcome.ILLEGAL_FORMULA:
        assert verdict.cards_correct is (verdict.outcome is not Outcome.WRONG_CARDS)
    assert seconds < TIME_LIMIT_S, f"{seconds * 1000:.1f} ms"


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("(4-4)/(3-3)", [4, 4, 3, 3]),
        ("13/(13-13)*13", [13, 13, 13, 13]),
        ("(10-4-3*2)/(1-1)", [10, 4, 3, 2, 1, 1]),
    ],
)
def test_zero_division_with_matching_numbers(text, values):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        verdict = verify(formula(text), values)
        best = min(best, time.perf_counter() - start)
    check(verdict)
    assert verdict.outcome is Outcome.WRONG_VALUE
    assert best < TIME_LIMIT_S


def test_nasty_input_long_feedback_is_bounded():
    # The feedback echoes what the model wrote; it should not echo 100k characters back.
    for name, response in NASTY.items():
        for kwargs in ({}, {"cards": HAND_CARDS, "check_recognition": True}):
            assert len(verify(response, HAND, **kwargs).feedback) < 2_000, name


# --------------------------------------------------------------------------------------------------
# Fuzzing


@fast(300)
@given(text=st.text())
def test_fuzz_text(text):
    check(verify(text, HAND))
    check(verify(text, HAND, cards=HAND_CARDS, check_recognition=True))


@fast(200)
@given(data=st.binary())
def test_fuzz_bytes(data):
    check(verify(data, HAND))
    check(verify(data.decode("utf-8", "surrogateescape"), HAND))


FORMULA_ALPHABET = st.sampled_from(
    list("0123456789+-*/() =.,'\"x×·÷−–") + ["10", "13", "\n", "\x00", "٣", "２"]
)


@fast(300)
@given(
    body=st.one_of(st.text(), st.lists(FORMULA_ALPHABET, max_size=40).map("".join)),
    closing=st.sampled_from(['"', '"}', "", "'", '",}']),
)
def test_fuzz_formula_field(body, closing):
    verdict = verify('"formula": "' + body + closing, HAND)
    check(verdict)
    verdict = verify(
        "{'cards': [" + body + "], 'formula': '" + body + "'}", HAND, cards=HAND_CARDS, check_recognition=True
    )
    check(verdict)


@fast(150)
@given(
    values=st.lists(st.integers(1, 13), min_size=1, max_size=5), body=st.lists(FORMULA_ALPHABET, max_size=30)
)
def test_fuzz_formula_against_other_hands(values, body):
    check(verify(formula("".join(body)), values))
