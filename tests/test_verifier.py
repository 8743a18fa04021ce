"""The GeneralPoints verifier: tolerant reading of the answer, the paper's reward table, feedback."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from oracle import OPS, PRECEDENCE, fast, tree_value

from shiftlab.tasks.general_points.cards import RANKS, rank_value
from shiftlab.tasks.general_points.verifier import Outcome, RewardTable, Verdict, verify

HAND = [4, 3, 2, 10]
HAND_CARDS = ["4", "3", "2", "10"]
DEFAULT = RewardTable()


def answer(formula: str, cards=HAND_CARDS, number=HAND) -> str:
    return json.dumps({"cards": cards, "number": number, "formula": formula}, ensure_ascii=False)


def score(formula: str, values=HAND, target: int = 24, **kwargs) -> Verdict:
    return verify(answer(formula), values, target, **kwargs)


# --------------------------------------------------------------------------------------------------
# Property: random expressions in random answer formats


@st.composite
def printed_expression(draw, numbers: list[int]) -> tuple[str, Fraction | None]:
    """A random tree over the numbers, printed with the parentheses it needs, random redundant ones
    (around numbers too, sometimes doubled) and random spaces."""
    order = draw(st.permutations(numbers))

    def build(seq):
        if len(seq) == 1:
            return seq[0]
        cut = draw(st.integers(1, len(seq) - 1))
        return (draw(st.sampled_from(OPS)), build(seq[:cut]), build(seq[cut:]))

    def space() -> str:
        return draw(st.sampled_from(["", "", "", " ", "  "]))

    def wrap(text: str, required: bool) -> str:
        extra = draw(st.integers(0, 7))
        if required or extra == 0:
            text = f"({space()}{text}{space()})"
        if extra == 1:
            text = f"(({text}))"
        return text

    def show(tree) -> tuple[str, int]:
        if not isinstance(tree, tuple):
            return str(tree), 3
        op, left, right = tree
        prec = PRECEDENCE[op]
        lt, lp = show(left)
        rt, rp = show(right)
        lt = wrap(lt, lp < prec)
        rt = wrap(rt, rp < prec or (rp == prec and op in "-/"))
        return f"{lt}{space()}{op}{space()}{rt}", prec

    tree = build(list(order))
    text = show(tree)[0]
    if draw(st.integers(0, 9)) == 0:
        text = f"({text})"
    return text, tree_value(tree)


FORMATS = {
    "json": lambda cards, numbers, f: json.dumps({"cards": cards, "number": numbers, "formula": f}),
    "python": lambda cards, numbers, f: (
        "{'cards': ["
        + ", ".join(f"'{c}'" for c in cards)
        + "], 'number': ["
        + ", ".join(map(str, numbers))
        + "], 'formula': '"
        + f
        + "',}"
    ),
    "fenced": lambda cards, numbers, f: (
        "```json\n" + json.dumps({"cards": cards, "number": numbers, "formula": f}, indent=2) + "\n```"
    ),
    "reasoning": lambda cards, numbers, f: (
        'Let me think. A first guess, "formula": "1+1", is too small.\nFinal answer:\n'
        + json.dumps({"cards": cards, "number": numbers, "formula": f})
    ),
    "trailing_comma": lambda cards, numbers, f: (
        '{\n  "cards": '
        + json.dumps(cards)
        + ',\n  "number": '
        + json.dumps(numbers)
        + ',\n  "formula": "'
        + f
        + '",\n}'
    ),
}


@st.composite
def scored_cases(draw):
    face_cards_as_ten = draw(st.booleans())
    ranks = draw(st.lists(st.sampled_from(RANKS), min_size=4, max_size=4))
    values = [rank_value(rank, face_cards_as_ten) for rank in ranks]
    numbers = list(values)
    change = draw(st.sampled_from(["same", "same", "same", "drop", "duplicate", "replace"]))
    i = draw(st.integers(0, 3))
    if change == "drop":
        del numbers[i]
    elif change == "duplicate":
        numbers.append(numbers[i])
    elif change == "replace":
        numbers[i] = draw(st.integers(1, 13).filter(lambda n: n != values[i]))
    text, value = draw(printed_expression(numbers))
    integral = value is not None and value.denominator == 1
    target = draw(st.sampled_from([24, int(value)])) if integral else 24
    stated = draw(st.sampled_from(["", "", "=24", " = 24", f"={target}"]))
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    response = FORMATS[fmt](ranks, values, text + stated)
    return response, values, target, numbers, value, text


@fast(300)
@given(case=scored_cases())
def test_reward_follows_numbers_and_exact_value(case):
    response, values, target, numbers, value, text = case
    verdict = verify(response, values, target)
    if Counter(numbers) != Counter(values):
        expected = Outcome.WRONG_NUMBERS
    elif value is None or value != target:
        expected = Outcome.WRONG_VALUE
    else:
        expected = Outcome.CORRECT
    event(expected.value)
    assert verdict.outcome is expected, (response, verdict)
    assert verdict.reward == DEFAULT[expected]
    assert (verdict.reward == 5) == (expected is Outcome.CORRECT)
    assert verdict.success == (expected is Outcome.CORRECT)
    assert verdict.formula == text
    assert verdict.cards_correct is None


# --------------------------------------------------------------------------------------------------
# Each outcome


@pytest.mark.parametrize(
    "formula",
    [
        "(4*3)+(2+10)",
        "10*3-4-2",
        "4 * 3 + 2 + 10",
        "( 10 * 3 ) - ( 4 + 2 )",
        "4*3+2+10=24",
        "4*3+2+10 = 24",
        "((4*3))+(2)+(10)",
        "10×3−4–2",
        "4·3+2+10",
        "(10 − 4 ÷ 2) · 3",
    ],
)
def test_correct(formula):
    verdict = score(formula)
    assert verdict.outcome is Outcome.CORRECT
    assert verdict.reward == 5.0
    assert verdict.success
    assert "24" in verdict.feedback
    assert verdict.cards_correct is None


def test_exact_rational_arithmetic():
    verdict = score("8/(3-8/3)", [8, 3, 8, 3])
    assert verdict.outcome is Outcome.CORRECT and verdict.reward == 5.0
    assert score("8÷(3−8÷3)", [8, 3, 8, 3]).reward == 5.0
    assert score("5*(5-1/5)", [1, 5, 5, 5]).reward == 5.0
    assert score("(3/7+3)*7", [3, 3, 7, 7]).reward == 5.0
    # Integer division is not what "/" means: 7/2*2 is exactly 7.
    assert score("7/2*2+1", [7, 2, 2, 1], 8).reward == 5.0


@pytest.mark.parametrize(
    ("formula", "shown"),
    [
        ("4+3+2+10", "19"),
        ("4/3+2+10", "40/3"),
        ("10/4*3-2", "11/2"),
        ("(10-4)*3*2", "36"),
        ("4-3-2-10", "-11"),
    ],
)
def test_wrong_value_names_the_value(formula, shown):
    verdict = score(formula)
    assert verdict.outcome is Outcome.WRONG_VALUE
    assert verdict.reward == -1.0
    assert shown in verdict.feedback
    assert "24" in verdict.feedback


@pytest.mark.parametrize(
    ("formula", "values"),
    [("(4-4)/(3-3)", [4, 4, 3, 3]), ("10/(4-2*2)", [10, 4, 2, 2]), ("(4*3)/(2-2)", [4, 3, 2, 2])],
)
def test_division_by_zero_is_a_wrong_value(formula, values):
    verdict = score(formula, values)
    assert verdict.outcome is Outcome.WRONG_VALUE
    assert verdict.reward == -1.0
    assert "zero" in verdict.feedback


@pytest.mark.parametrize(
    ("formula", "mentioned"),
    [
        ("4*3*2", ["10", "not used"]),
        ("4*3*(12-10)", ["12", "not among", "2"]),
        ("4*6", ["6", "not among"]),
        ("10+10+4", ["10", "twice", "once"]),
        ("24", ["24", "not among"]),
        ("4*3*2+10+10-10", ["10", "3 times"]),
        ("(4*3)*2*10/10", ["10", "twice"]),
    ],
)
def test_wrong_numbers_names_the_number(formula, mentioned):
    verdict = score(formula)
    assert verdict.outcome is Outcome.WRONG_NUMBERS
    assert verdict.reward == -2.0
    for word in mentioned:
        assert word in verdict.feedback, (word, verdict.feedback)


def test_wrong_numbers_with_repeated_cards():
    verdict = score("8/(3-8/3)", [8, 3, 8, 8])
    assert verdict.outcome is Outcome.WRONG_NUMBERS
    assert "3" in verdict.feedback and "8" in verdict.feedback


@pytest.mark.parametrize("formula", ["(10+4*3+2", "((10+4*3+2", "(10)+(4*3+2", "((10×3−4–2", "(10*3-4-2", "(((10*3-4)-2"])
def test_partial_needs_every_number_and_only_closing_parentheses_left(formula):
    verdict = score(formula)
    assert verdict.outcome is Outcome.PARTIAL, verdict
    assert verdict.reward == 1.0
    assert "unfinished" in verdict.feedback
    closed = formula + ")" * (formula.count("(") - formula.count(")"))
    assert score(closed).outcome is Outcome.CORRECT


@pytest.mark.parametrize(
    "formula",
    [
        "(", "((", "(((((", "10*3-", "10+4*3+", "10+(4*3)+", "10×3−4–",  # beginnings, however promising
        "(10*3-4", "(10", "10*(3",  # a number missing
        "(4+3+2+10", "(10*3-4+2",  # every number, but closing does not give 24
        "10*3-4-2+", "(10*3-4-2+",  # every number, then an operator: nothing can follow
    ],
)
def test_unfinished_formula_without_real_progress_is_illegal(formula):
    verdict = score(formula)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA, verdict
    assert verdict.reward == -3.0 and "unfinished" in verdict.feedback


@pytest.mark.parametrize(("formula", "mentioned"), [("10*3-5-", "5 is not among"), ("10*10*", "10 is used twice"),
                                                    ("(10*3-4", "2 is not used")])
def test_unfinished_formula_feedback_names_the_number_problems(formula, mentioned):
    verdict = score(formula)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA and mentioned in verdict.feedback, verdict


def test_partial_on_the_float_trap_hand():
    verdict = verify('{"formula": "8/(3-8/3"}', [8, 3, 8, 3])
    assert verdict.outcome is Outcome.PARTIAL


@pytest.mark.parametrize(
    ("formula", "mentioned"),
    [
        ("-4+3", "'-'"),
        ("4*3*2-(-10)", "'-'"),
        ("(4*3)(2+10)", "missing"),
        ("2(10+4*3)", "missing"),
        ("4 3", "missing"),
        ("()", "()"),
        (")", "')'"),
        ("4*3)+(2+10", "')'"),
        ("", "empty"),
        ("4**3+2+10", "'*'"),
        ("4^3", "'^'"),
        ("4*3+2+10.0", "'.'"),
        ("٣*8", "٣"),
        ("２*12", "２"),
        ("4*3+2+1O", "'O'"),
        ("1234567890123*4", "too long"),
        ("4*3+2+10" + "+0" * 300, "too long"),
    ],
)
def test_illegal_formula(formula, mentioned):
    verdict = score(formula)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA, verdict
    assert verdict.reward == -3.0
    assert mentioned in verdict.feedback, verdict.feedback
    assert "None" not in verdict.feedback, verdict.feedback


@pytest.mark.parametrize(
    "response",
    [
        "",
        "I think the answer is 4*3+2+10.",
        '{"cards": ["4", "3", "2", "10"], "number": [4, 3, 2, 10]}',
        '{"formula": }',
        '{"formula": ""}',
        '{"formula": null}',
    ],
)
def test_missing_formula_is_illegal(response):
    verdict = verify(response, HAND)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA
    assert verdict.reward == -3.0
    assert verdict.feedback


def test_missing_formula_feedback_names_the_format():
    feedback = verify('{"cards": ["4"]}', HAND).feedback
    assert "formula" in feedback and "JSON" in feedback


# --------------------------------------------------------------------------------------------------
# Tolerant reading


@pytest.mark.parametrize(
    "response",
    [
        '{"cards": ["4", "3", "2", "10"], "number": [4, 3, 2, 10], "formula": "10*3-4-2"}',
        "{'cards': ['4', '3', '2', '10'], 'number': [4, 3, 2, 10], 'formula': '10*3-4-2',}",
        '{"cards": ["4", "3", "2", "10",], "number": [4, 3, 2, 10,], "formula": "10*3-4-2",}',
        '```json\n{\n  "cards": ["4", "3", "2", "10"],\n  "number": [4, 3, 2, 10],\n  "formula": "10*3-4-2"\n}\n```',
        '```\n{"formula": "10 * 3 - 4 - 2 = 24"}\n```',
        'Reasoning: 10*3 is 30, minus 4 and 2.\n{"formula": "10*3-4-2"}',
        '{"formula": "1+1"}\nWait, that is wrong.\n{"formula": "10*3-4-2"}',
        "{formula: 10*3-4-2}",
        '{"Formula": "10*3-4-2"}',
        "{'formula': \"10*3-4-2\"}",
        '{"formula" : "24 = 10*3-4-2"}',
        '{"formula":"10*3-4-2"}',
    ],
)
def test_tolerant_reading(response):
    verdict = verify(response, HAND)
    assert verdict.outcome is Outcome.CORRECT, verdict
    assert verdict.reward == 5.0


def test_strict_json_string_escapes_are_read():
    # Python's json.dumps (ensure_ascii=True) and many JSON writers escape non-ASCII characters; in strict
    # JSON "10\u00d73" is the string "10×3", and × is an accepted operator.
    response = json.dumps({"cards": HAND_CARDS, "number": HAND, "formula": "10×3−4−2"})
    assert "\\u00d7" in response
    assert verify(response, HAND).outcome is Outcome.CORRECT


def test_last_formula_wins():
    first, second = '{"formula": "10*3-4-2"}', '{"formula": "4+3+2+10"}'
    assert verify(first + "\n" + second, HAND).outcome is Outcome.WRONG_VALUE
    assert verify(second + "\n" + first, HAND).outcome is Outcome.CORRECT


def test_bytes_response():
    assert verify(answer("10*3-4-2").encode(), HAND).reward == 5.0
    assert verify(bytearray(answer("10×3−4−2").encode()), HAND).reward == 5.0


def test_target_other_than_24():
    assert score("10*3-4-2", HAND, 24).reward == 5.0
    assert score("4+3+2+10", HAND, 19).reward == 5.0
    verdict = score("10*3-4-2", HAND, 19)
    assert verdict.outcome is Outcome.WRONG_VALUE and "19" in verdict.feedback


# --------------------------------------------------------------------------------------------------
# Recognition (image tasks)


@pytest.mark.parametrize(
    "listed",
    [
        '["4", "3", "2", "10"]',
        '["10", "2", "4", "3"]',
        "[4, 3, 2, 10]",
        "['4', '3', '2', 'T']",
        '["4H", "3S", "2D", "10C"]',
        '["4 of hearts", "3 of spades", "2", "T"]',
        "[4, 3, 2, 10,]",
        "[10,2,3,4]",
    ],
)
def test_recognition_of_number_cards(listed):
    response = '{"cards": ' + listed + ', "number": [4, 3, 2, 10], "formula": "10*3-4-2"}'
    verdict = verify(response, HAND, cards=HAND_CARDS, check_recognition=True)
    assert verdict.outcome is Outcome.CORRECT, verdict
    assert verdict.cards_correct is True


@pytest.mark.parametrize(
    "listed",
    [
        '["K", "Q", "J", "A"]',
        '["king", "queen", "jack", "ace"]',
        '["KH", "QS", "JD", "AC"]',
        "['King', 'Queen', 'Jack', 'Ace']",
        '["A", "J", "K", "Q"]',
        "[K, Q, J, A]",
        '["Ace of spades", "King of hearts", "Queen", "Jack"]',
    ],
)
@pytest.mark.parametrize(
    ("face_cards_as_ten", "formula", "target"), [(True, "10+10+10-1", 29), (False, "13+12-11*1", 14)]
)
def test_recognition_of_face_cards(listed, face_cards_as_ten, formula, target):
    dealt = ["K", "Q", "J", "A"]
    values = [rank_value(r, face_cards_as_ten) for r in dealt]
    response = '{"cards": ' + listed + ', "formula": "' + formula + '"}'
    verdict = verify(response, values, target, cards=dealt, check_recognition=True)
    assert verdict.cards_correct is True
    assert verdict.outcome is Outcome.CORRECT, verdict


@pytest.mark.parametrize(
    "listed",
    [
        '"cards": ["4", "3", "2", "9"],',
        '"cards": ["4", "3", "2"],',
        '"cards": ["4", "3", "2", "10", "5"],',
        '"cards": ["4", "3", "2", "10", "10"],',
        '"cards": [],',
        '"cards": ["J", "3", "2", "4"],',
        "",
    ],
)
def test_wrong_or_missing_cards(listed):
    response = "{" + listed + ' "number": [4, 3, 2, 10], "formula": "10*3-4-2"}'
    verdict = verify(response, HAND, cards=HAND_CARDS, check_recognition=True)
    assert verdict.outcome is Outcome.WRONG_CARDS, verdict
    assert verdict.reward == -1.5
    assert verdict.cards_correct is False
    assert "card" in verdict.feedback
    # Without the recognition check the same answer is simply correct.
    unchecked = verify(response, HAND, cards=HAND_CARDS)
    assert unchecked.outcome is Outcome.CORRECT
    assert unchecked.cards_correct is None
    assert verify(response, HAND).reward == 5.0


def test_wrong_cards_feedback_echoes_the_listed_cards():
    response = '{"cards": ["4", "3", "2", "9"], "formula": "10*3-4-2"}'
    feedback = verify(response, HAND, cards=HAND_CARDS, check_recognition=True).feedback
    assert "9" in feedback


def test_recognition_outcome_is_single():
    # Wrong cards and a wrong value: one outcome, one table value (penalties do not stack).
    response = '{"cards": ["4", "3", "2", "9"], "formula": "4+3+2+10"}'
    verdict = verify(response, HAND, cards=HAND_CARDS, check_recognition=True)
    assert verdict.reward in {-1.5, -1.0}
    assert verdict.cards_correct is False


def test_last_cards_list_wins():
    response = (
        '{"cards": ["4", "3", "2", "9"]}\nNo, I misread one.\n'
        '{"cards": ["4", "3", "2", "10"], "formula": "10*3-4-2"}'
    )
    verdict = verify(response, HAND, cards=HAND_CARDS, check_recognition=True)
    assert verdict.outcome is Outcome.CORRECT and verdict.cards_correct is True


# --------------------------------------------------------------------------------------------------
# Reward table


CUSTOM = RewardTable(
    correct=10.0, partial=0.5, wrong_value=-0.25, wrong_cards=-7.0, wrong_numbers=-4.0, illegal_formula=-9.0
)


@pytest.mark.parametrize(
    ("response", "kwargs", "outcome", "reward"),
    [
        (answer("10*3-4-2"), {}, Outcome.CORRECT, 10.0),
        (answer("(10*3-4-2"), {}, Outcome.PARTIAL, 0.5),
        (answer("4+3+2+10"), {}, Outcome.WRONG_VALUE, -0.25),
        (
            answer("10*3-4-2", cards=["4", "3", "2", "J"]),
            {"cards": HAND_CARDS, "check_recognition": True},
            Outcome.WRONG_CARDS,
            -7.0,
        ),
        (answer("4*3*2"), {}, Outcome.WRONG_NUMBERS, -4.0),
        (answer("4 3"), {}, Outcome.ILLEGAL_FORMULA, -9.0),
        ("x" * 200_000, {}, Outcome.ILLEGAL_FORMULA, -9.0),
    ],
)
def test_custom_reward_table(response, kwargs, outcome, reward):
    verdict = verify(response, HAND, rewards=CUSTOM, **kwargs)
    assert verdict.outcome is outcome
    assert verdict.reward == reward == CUSTOM[outcome]


def test_default_reward_table_is_the_papers():
    assert [DEFAULT[o] for o in Outcome] == [5.0, 1.0, -1.0, -1.5, -2.0, -3.0]


def test_too_long_answer_counts_as_unrecognised_cards_in_image_mode():
    text = answer("4*3+2+10") + " " * 100_001
    assert verify(text, HAND, cards=HAND_CARDS, check_recognition=True).cards_correct is False
    assert verify(text, HAND).cards_correct is None


@pytest.mark.parametrize("table", ["general_points", "virl", "clock"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "5"])
def test_every_reward_table_refuses_a_reward_that_is_not_a_finite_number(table, value):
    reward_table = importlib.import_module(f"shiftlab.tasks.{table}.verifier").RewardTable
    first = next(iter(reward_table.__dataclass_fields__))
    with pytest.raises(ValueError, match=f"reward {first} must be a finite number"):
        reward_table(**{first: value})
