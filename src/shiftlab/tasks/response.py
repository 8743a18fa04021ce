"""Model responses are untrusted: turn anything into bounded text, and find a key's last value in it.

Shared by the tasks' verifiers, which must score any input, of any type and size, without raising.
"""

from __future__ import annotations

import re

MAX_RESPONSE_CHARS = 100_000


def response_text(response) -> str:
    """str as is; bytes decoded (invalid UTF-8 replaced, length bounded); anything else as empty."""
    if isinstance(response, str):
        return response
    if isinstance(response, (bytes, bytearray)):
        return bytes(response[: MAX_RESPONSE_CHARS * 4 + 4]).decode("utf-8", errors="replace")
    return ""


def last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    """The last match: a final answer comes after any reasoning that mentions the same key."""
    match = None
    for match in pattern.finditer(text):  # noqa: B007 - only the last one is kept
        pass
    return match
