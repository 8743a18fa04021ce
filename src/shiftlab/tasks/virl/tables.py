"""The literal tables of the procedural cities (tables/*.json), kept apart from the code that uses them."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def read_table(name: str) -> dict[str, Any]:
    """tables/<name>, with JSON arrays as tuples: the frozen dataclasses built from it hold tuples."""
    text = (resources.files(__package__) / "tables" / name).read_text(encoding="utf-8")
    return _tuples(json.loads(text))


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value
