"""Prompts for clock arithmetic: the question, the rules of the dial, the answer format, and the
revision turn after a rejected answer (the answer and the verifier's feedback are appended)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shiftlab.messages import Message, revision_turn, user_turn
from shiftlab.tasks.clock.dial import first_hour, last_hour, question, time_after, wraps
from shiftlab.tasks.clock.expert import format_answer, working


@dataclass(frozen=True)
class ClockPrompt:
    """The clock conversation. `example=True` adds a worked example with other numbers (for API
    models that have not been fine-tuned on the format)."""

    example: bool = False

    def task_text(self, info: Mapping) -> str:
        dial, zero_based, start, offset = info["dial"], info["zero_based"], info["start"], info["offset"]
        first, last = first_hour(zero_based), last_hour(dial, zero_based)
        lines = [
            question(start, offset, dial, zero_based),
            "",
            "Rules:",
            f"- Each hour the hand moves on to the next number; after {last} comes {first}.",
            "- The hand may go round the dial more than once.",
            "",
            "Reply with a JSON object with two keys:",
            '- "sum": your working, the hour shown plus the hours added, less the whole turns of the dial',
            f'- "time": the number the clock shows then, an integer from {first} to {last}',
        ]
        text = "\n".join(lines)
        if self.example:
            shown_start, shown_offset = _example(info)
            time = time_after(shown_start, shown_offset, dial, zero_based)
            turns = wraps(shown_start, shown_offset, dial, zero_based)
            answer = format_answer(working(shown_start, shown_offset, dial, turns, time), time)
            text += (f"\n\nExample answer if the clock showed {shown_start} and {shown_offset} hours were added:"
                     f"\n{answer}\n\nOutput only the JSON object.")
        return text

    def first_turn(self, observation: Any, info: Mapping) -> list[Message]:
        return user_turn(self.task_text(info))

    def next_turn(self, messages: list[Message], response: str, observation: Any, info: Mapping) -> list[Message]:
        """The conversation after a rejected `response`: it and the verifier's feedback are appended."""
        return revision_turn(messages, response, revision_text(info["feedback"]))


def _example(info: Mapping) -> tuple[int, int]:
    """Another question on the same dial that goes past the top: the next hour, a dial and three hours
    more (five when the episode asks exactly that)."""
    dial, first = info["dial"], first_hour(info["zero_based"])
    start = first + (info["start"] - first + 1) % dial
    offset = dial + 3 if info["offset"] != dial + 3 else dial + 5
    return start, offset


def revision_text(feedback: str) -> str:
    return f"Your answer was rejected. {feedback} Correct it and reply with the JSON object again."
