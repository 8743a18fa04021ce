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
_OPERATORS = "+-*/"
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True)
class ParsedFormula:
    """Tokens of a formula and how far it got: an error, an unfinished prefix, or a complete formula."""

    tokens: tuple = ()
    error: str | None = None
    unfinished: str | None = None
    rpn: tuple = ()

    @property
    def complete(self) -> bool:
        return self.error is None and self.unfinished is None

    @property
    def numbers(self) -> list[int]:
        return [t for t in self.tokens if isinstance(t, int)]


def _describe(char: str) -> str:
    return repr(char) if char.isprintable() else f"U+{ord(char):04X}"


_TOKEN = re.compile(r"[ \t\r\n]*(?:([0-9]+)|([-+*/()×·÷−–])|(.))", re.DOTALL)


def tokenize(text: str) -> tuple[list, str | None]:
    """Split into ints and the one-character tokens + - * / ( ); spaces only separate tokens."""
    tokens: list = []
    for digits, symbol, other in _TOKEN.findall(text):
        if digits:
            if len(digits) > MAX_NUMBER_DIGITS:
                return tokens, f"the number starting {digits[:8]}... is too long"
            tokens.append(int(digits))
        elif symbol:
            tokens.append(_ALIASES.get(symbol, symbol))
        elif other:
            return tokens, f"it contains the character {_describe(other)}, which is not allowed"
    return tokens, None


def _show(token) -> str:
    return f"'{token}'" if isinstance(token, str) else str(token)


def parse(text: str) -> ParsedFormula:
    """Check the grammar expr := term (op term)*, term := number | '(' expr ')' and build RPN."""
    if len(text) > MAX_FORMULA_CHARS:
        return ParsedFormula(error=f"it is too long ({len(text)} characters)")
    tokens, error = tokenize(text)
    if error:
        return ParsedFormula(tuple(tokens), error=error)
    if not tokens:
        return ParsedFormula(error="it is empty")
    output: list = []
    stack: list[str] = []
    expect_operand = True
    previous = None
    for token in tokens:
        if isinstance(token, int):
            if not expect_operand:
                return ParsedFormula(tuple(tokens), error=f"an operator is missing between {_show(previous)} and {token}")
            output.append(token)
            expect_operand = False
        elif token == "(":
            if not expect_operand:
                return ParsedFormula(tuple(tokens), error=f"an operator is missing between {_show(previous)} and '('")
            stack.append(token)
        elif token == ")":
            if expect_operand:
                what = "empty parentheses '()'" if previous == "(" else f"')' right after {_show(previous)}"
                return ParsedFormula(tuple(tokens), error=f"it has {what}")
            while stack and stack[-1] != "(":
                output.append(stack.pop())
            if not stack:
                return ParsedFormula(tuple(tokens), error="it has a ')' without a matching '('")
            stack.pop()
        else:
            if expect_operand:
                if previous is None or previous == "(":
                    reason = f"'{token}' has no number on its left (signs like -3 are not allowed)"
                else:
                    reason = f"two operators in a row ({_show(previous)} then '{token}')"
                return ParsedFormula(tuple(tokens), error=reason)
            while stack and stack[-1] != "(" and _PRECEDENCE[stack[-1]] >= _PRECEDENCE[token]:
                output.append(stack.pop())
            stack.append(token)
            expect_operand = True
        previous = token
    if expect_operand:
        return ParsedFormula(tuple(tokens), unfinished=f"it ends with {_show(previous)}")
    if "(" in stack:
        return ParsedFormula(tuple(tokens), unfinished="a '(' is never closed")
    output.extend(reversed(stack))
    return ParsedFormula(tuple(tokens), rpn=tuple(output))


def evaluate(parsed: ParsedFormula) -> Fraction | int | None:
    """Exact value of a complete formula (an int unless a division leaves a remainder); None when it
    divides by zero."""
    if not parsed.complete:
        raise ValueError("only a complete formula has a value")
    values: list = []
    for token in parsed.rpn:
        if isinstance(token, int):
            values.append(token)
            continue
        b = values.pop()
        a = values.pop()
        if token == "+":
            values.append(a + b)
        elif token == "-":
            values.append(a - b)
        elif token == "*":
            values.append(a * b)
        elif b == 0:
            return None
        elif isinstance(a, int) and isinstance(b, int) and a % b == 0:
            values.append(a // b)
        else:
            values.append(Fraction(a) / b)
    return values[0]


def format_value(value: Fraction | int) -> str:
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
