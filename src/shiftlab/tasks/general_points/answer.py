"""Find the scored answer fields in a free-form model response: "formula", and "cards" for image
tasks. The response format also has "number" (the cards' values), which, as in the paper, is not scored.

Models write the answer as strict JSON, as a Python dict with single quotes, with trailing commas,
inside code fences or after some reasoning. Rather than parse a document, each field is located by
a key pattern and the last occurrence wins (a final answer follows the reasoning). Every pattern is
a single pass without nested quantifiers, so time is linear in the length of the text.
"""

from __future__ import annotations

import json
import re

from shiftlab.tasks.response import last_match

MAX_LIST_ITEMS = 64

# Patterns open with a literal ("ormula", then a look-behind for F/f) so the regex engine can skip
# ahead with a fast substring search; a case-insensitive pattern scans ~10x slower on long text.
_KEY = r"""{tail}(?<=[{first}]{tail})s?["'`]?\s*:\s*"""
_FORMULA = re.compile(
    _KEY.format(first="Ff", tail="ormula") + r"""(?:"([^"\n]*)"|'([^'\n]*)'|`([^`\n]*)`|([^,"'`\n}{]*))"""
)
_CARDS = re.compile(_KEY.format(first="Cc", tail="ards") + r"\[([^\[\]]*)\]")
_PLAIN_INTEGER = re.compile(r"\s*-?[0-9]+\s*")

_RANK_WORDS = {"ACE": "A", "1": "A", "T": "10", "JACK": "J", "QUEEN": "Q", "KING": "K"}
# A rank, optionally followed by a suit letter ("KH", "10s"), and then no further letter or digit.
_RANK = re.compile(r"(10|ACE|JACK|QUEEN|KING|[2-9AJQKT1])[SHDC]?(?![A-Z0-9])")


_UNREAD = object()


class Answer:
    """The answer fields found in a response; each is located only when first read, None if absent."""

    __slots__ = ("text", "_formula", "_cards")

    def __init__(self, text: str):
        self.text = text
        self._formula = self._cards = _UNREAD

    @property
    def formula(self) -> str | None:
        if self._formula is _UNREAD:
            match = last_match(_FORMULA, self.text)
            if match is None:
                self._formula = None
            else:
                double_quoted, *others = match.groups()
                raw = double_quoted if double_quoted is not None else next(g for g in others if g is not None)
                if double_quoted is not None and "\\" in raw:
                    raw = _json_unescape(raw)
                self._formula = _left_side(raw)
        return self._formula

    @property
    def cards(self) -> tuple[str, ...] | None:
        if self._cards is _UNREAD:
            self._cards = _list_field(_CARDS, self.text)
        return self._cards


def _list_field(pattern: re.Pattern, text: str) -> tuple[str, ...] | None:
    match = last_match(pattern, text)
    return _items(match.group(1)) if match else None


def _json_unescape(raw: str) -> str:
    """Decode JSON string escapes ("10\\u00d73" is 10×3 in strict JSON); raw text if it is not valid JSON."""
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw


def _items(body: str) -> tuple[str, ...]:
    """List items without quotes; past MAX_LIST_ITEMS the rest stays one item (no hand is that big)."""
    parts = body.split(",", MAX_LIST_ITEMS)
    return tuple(item.strip().strip("\"'`").strip() for item in parts if item.strip())


def _left_side(formula: str) -> str:
    """Drop a stated result: '4*6=24' and '24 = 4*6' both become '4*6'."""
    sides = formula.split("=")
    if len(sides) == 1:
        return formula.strip()
    for side in sides:
        if side.strip() and not _PLAIN_INTEGER.fullmatch(side):
            return side.strip()
    return sides[0].strip()


def extract(text: str) -> Answer:
    return Answer(text)


def normalize_rank(name: str) -> str | None:
    """A card name as written ('K', 'king', '10 of hearts', 'KH', 'T', 'Ace') to its rank, or None."""
    match = _RANK.match(name.strip().upper())
    if not match:
        return None
    return _RANK_WORDS.get(match.group(1), match.group(1))
