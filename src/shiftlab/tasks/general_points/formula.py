"""Read an arithmetic formula written by a model, safely and exactly.

Model text is untrusted: nothing here calls eval. The parser is a single left-to-right pass with an
explicit stack (no recursion, so nesting depth cannot exhaust the interpreter), numbers are limited
in length before conversion, and evaluation uses exact rationals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_FORMULA_CHARS = 500
MAX_NUMBER_DIGITS = 12

# Typographic operators models like to write; everything else outside ASCII is rejected.
_ALIASES = {"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True)
class ParsedFormula:
    """Tokens of a formula and how far it got: an error, an unfinished prefix, or a complete formula
    with its exact value (None when it divides by zero). `open_parens` counts the '(' left open when
    the formula is unfinished only because it has not closed them."""

    tokens: tuple = ()
    error: str | None = None
    unfinished: str | None = None
    value: int | Fraction | None = None
    open_parens: int = 0

    @property
    def complete(self) -> bool:
        return self.error is None and self.unfinished is None

    @property
    def numbers(self) -> list[int]:
        return [t for t in self.tokens if isinstance(t, int)]


def _describe(char: str) -> str:
    return repr(char) if char.isprintable() else f"U+{ord(char):04X}"


def _show(token) -> str:
    return f"'{token}'" if isinstance(token, str) else str(token)


_TOKEN = re.compile(r"\s*(?:([0-9]+)|([-+*/()×·÷−–])|(.))", re.DOTALL)


def tokenize(text: str) -> tuple[list, str | None]:
    """Split into ints and the one-character tokens + - * / ( ); white space only separates tokens."""
    tokens: list = []
    for digits, symbol, other in _TOKEN.findall(text.strip()):
        if digits:
            if len(digits) > MAX_NUMBER_DIGITS:
                return tokens, f"the number starting {digits[:8]}... is too long"
            tokens.append(int(digits))
        elif symbol:
            tokens.append(_ALIASES.get(symbol, symbol))
        elif other:
            return tokens, f"it contains the character {_describe(other)}, which is not allowed"
    return tokens, None


def _reduce(operands: list, op: str) -> None:
    """Replace the top two operands by their combination; None (division by zero) propagates."""
    b = operands.pop()
    a = operands.pop()
    if a is None or b is None:
        operands.append(None)
    elif op == "+":
        operands.append(a + b)
    elif op == "-":
        operands.append(a - b)
    elif op == "*":
        operands.append(a * b)
    elif b == 0:
        operands.append(None)
    elif type(a) is int and type(b) is int and a % b == 0:
        operands.append(a // b)
    else:
        operands.append(Fraction(a) / b)


def parse(text: str) -> ParsedFormula:
    """Check the grammar expr := term (op term)*, term := number | '(' expr ')' and evaluate it.

    One pass with an operand and an operator stack (shunting-yard); ints stay ints until a division
    leaves a remainder. Numbers have at most MAX_NUMBER_DIGITS digits and formulas at most
    MAX_FORMULA_CHARS characters, so the arithmetic is bounded.
    """
    if len(text) > MAX_FORMULA_CHARS:
        return ParsedFormula(error=f"it is too long ({len(text)} characters)")
    tokens, error = tokenize(text)
    if error:
        return ParsedFormula(tuple(tokens), error=error)
    if not tokens:
        return ParsedFormula(error="it is empty")
    operands: list = []
    operators: list[str] = []
    expect_operand = True
    previous = None
    for token in tokens:
        if type(token) is int:
            if not expect_operand:
                return ParsedFormula(tuple(tokens), error=f"an operator is missing between {_show(previous)} and {token}")
            operands.append(token)
            expect_operand = False
        elif token == "(":
            if not expect_operand:
                return ParsedFormula(tuple(tokens), error=f"an operator is missing between {_show(previous)} and '('")
            operators.append(token)
        elif token == ")":
            if expect_operand:
                if previous is None:
                    return ParsedFormula(tuple(tokens), error="it starts with ')'")
                what = "empty parentheses '()'" if previous == "(" else f"')' right after {_show(previous)}"
                return ParsedFormula(tuple(tokens), error=f"it has {what}")
            while operators and operators[-1] != "(":
                _reduce(operands, operators.pop())
            if not operators:
                return ParsedFormula(tuple(tokens), error="it has a ')' without a matching '('")
            operators.pop()
        else:
            if expect_operand:
                if previous is None or previous == "(":
                    reason = f"'{token}' has no number on its left (signs like -3 are not allowed)"
                else:
                    reason = f"two operators in a row ({_show(previous)} then '{token}')"
                return ParsedFormula(tuple(tokens), error=reason)
            precedence = _PRECEDENCE[token]
            while operators and operators[-1] != "(" and _PRECEDENCE[operators[-1]] >= precedence:
                _reduce(operands, operators.pop())
            operators.append(token)
            expect_operand = True
        previous = token
    if expect_operand:
        return ParsedFormula(tuple(tokens), unfinished=f"it ends with {_show(previous)}")
    if "(" in operators:
        left_open = operators.count("(")
        what = "a '(' is never closed" if left_open == 1 else f"{left_open} '(' are never closed"
        return ParsedFormula(tuple(tokens), unfinished=what, open_parens=left_open)
    while operators:
        _reduce(operands, operators.pop())
    return ParsedFormula(tuple(tokens), value=operands[0])


def format_value(value: Fraction | int) -> str:
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
