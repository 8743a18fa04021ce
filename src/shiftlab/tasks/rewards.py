"""What every task's reward table shares: one finite number per verifier outcome, looked up by the
outcome itself. A task subclasses it with a field per outcome value and adds its own ordering rules."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum


@dataclass(frozen=True)
class OutcomeRewards:
    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"reward {item.name} must be a finite number, not {value!r}")

    def __getitem__(self, outcome: Enum) -> float:
        return getattr(self, outcome.value)
