"""A JSON-lines log of a training run, one line per logging step, that survives a resume.

Lines are flushed as they are written, so a killed run keeps every line it logged. On resume from
step K the lines after K are dropped first: the resumed run logs those steps again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class JsonlLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        """Keep the records up to `step`; lines that are not records (a cut line, junk) go too."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        kept = [line for line in lines if (line_step := _step(line)) is not None and line_step <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: _plain(v) for k, v in record.items()}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if _step(line) is not None]


def _step(line: str) -> int | None:
    """The step of a record line; None for a line that is not a JSON object."""
    try:
        record = json.loads(line)
        return int(record.get("step", 0)) if isinstance(record, dict) else None
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError):
        return None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
