"""Find the "time" a free-form response answers. The last "time" key wins, as a final answer follows
any reasoning; its value may be a JSON number, a quoted string ('4', "4"), or bare text after the
colon. Single-pass patterns without nested quantifiers keep the time linear in the text's length."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shiftlab.tasks.response import last_match

# Opens with the literal "ime" so the regex engine can skip ahead with a substring search; the
# look-behind then asks for T/t with no letter, digit or underscore before it ("runtime" is no key).
_TIME = re.compile(
    r"""ime(?<=(?<![A-Za-z0-9_])[Tt]ime)["'`]?\s*:\s*(?:"([^"\n]*)"|'([^'\n]*)'|`([^`\n]*)`|([^,:"'`\n}{\]]*))"""
)
_WHOLE = re.compile(r"\s*([-+]?)([0-9]+)(?:\.0*)?\s*")
MAX_DIGITS = 12  # more than any dial's number; longer digit strings are never converted
MAX_SHOWN = 40


@dataclass(frozen=True)
class TimeField:
    """What the last "time" key holds: `raw` as written (cut to MAX_SHOWN characters), `value` the
    whole number it is, or None when it is none or has more than MAX_DIGITS digits (`too_long`)."""

    raw: str
    value: int | None
    too_long: bool = False


def read_time(text: str) -> TimeField | None:
    """The last "time" field of `text`, or None when there is no "time" key."""
    match = last_match(_TIME, text)
    if match is None:
        return None
    raw = next(group for group in match.groups() if group is not None).strip()
    shown = raw[:MAX_SHOWN] + ("..." if len(raw) > MAX_SHOWN else "")
    whole = _WHOLE.fullmatch(raw)
    if whole is None:
        return TimeField(shown, None)
    sign, digits = whole.groups()
    digits = digits.lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        return TimeField(shown, None, too_long=True)
    return TimeField(shown, -int(digits) if sign == "-" else int(digits))
