"""The `milestone_info` text of a V-IRL route record, and the instructions regenerated from it.

`milestone_info` is pseudo-JSON, one block per milestone (see ../shared/docs/virl.md §2.3). We write
it byte-exactly and read it with a strict line parser: never `eval`, as V-IRL's own benchmark does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shiftlab.tasks.virl.geo import direction_word

NO_LANDMARK = "No landmark nearby"
_LINE = re.compile(r'^"([^"]*)": "(.*)",$')
_HEADING = re.compile(r"^(-?\d+) \((\w+)\)$")
_FORBIDDEN = ("{", "}", '"', "\n", "\r")


class MilestoneFormatError(ValueError):
    """A `milestone_info` text that does not follow the grammar."""


@dataclass(frozen=True)
class Milestone:
    """One block: where the leg into this milestone heads, and what is seen on arrival."""

    index: int  # 1-based
    landmarks: str  # "<name> is on your <rel>", "No landmark nearby", or "The destination <name> is on your <rel>"
    distance_m: int
    human_heading: int  # the heading before this leg (0 for the first), as the collector wrote it
    heading: int  # bearing of the leg into this milestone, truncated to an int

    @property
    def direction(self) -> str:
        return direction_word(self.heading)


def format_milestone_info(milestones: Sequence[Milestone]) -> str:
    """The exact text the V-IRL collector writes (trailing commas and all)."""
    blocks = []
    for m in milestones:
        for text in (m.landmarks,):
            if any(c in text for c in _FORBIDDEN):
                raise MilestoneFormatError(f"landmark text may not contain braces, quotes or newlines: {text!r}")
        blocks.append(
            "\n{\n"
            f'"intersection_idx": "{m.index}",\n'
            f'"landmarks": "{m.landmarks}",\n'
            f'"distance": "{m.distance_m} meters",\n'
            f'"human_heading": "{m.human_heading}",\n'
            f'"to_next_intersection_heading": "{m.heading} ({m.direction})",\n'
            "}\n"
        )
    return "".join(blocks)


def parse_milestone_info(text: str) -> list[Milestone]:
    """Read `milestone_info` back; raises MilestoneFormatError naming the first problem."""
    if not isinstance(text, str):
        raise MilestoneFormatError(f"milestone_info must be a string, not {type(text).__name__}")
    milestones: list[Milestone] = []
    fields: dict[str, str] | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if line == "{":
            if fields is not None:
                raise MilestoneFormatError(f"line {number}: '{{' inside a block")
            fields = {}
        elif line == "}":
            if fields is None:
                raise MilestoneFormatError(f"line {number}: '}}' without a block")
            milestones.append(_milestone(fields, len(milestones) + 1))
            fields = None
        else:
            match = _LINE.match(line)
            if fields is None or not match:
                raise MilestoneFormatError(f"line {number}: expected '\"key\": \"value\",', got {line[:80]!r}")
            fields[match.group(1)] = match.group(2)
    if fields is not None:
        raise MilestoneFormatError("the last block is not closed")
    if not milestones:
        raise MilestoneFormatError("no milestone blocks")
    return milestones


def _milestone(fields: dict[str, str], position: int) -> Milestone:
    heading = _HEADING.match(fields.get("to_next_intersection_heading", ""))
    if not heading:
        raise MilestoneFormatError(f"block {position}: 'to_next_intersection_heading' must look like '29 (northeast)'")
    try:
        distance = int(fields.get("distance", "0 meters").split()[0])
        human = int(fields.get("human_heading", "0"))
        index = int(fields.get("intersection_idx", str(position)))
    except ValueError as error:
        raise MilestoneFormatError(f"block {position}: {error}") from None
    return Milestone(index, fields.get("landmarks", NO_LANDMARK), distance, human, int(heading.group(1)))


def relative_turn(previous_heading: float, heading: float, wrap: bool = True) -> str:
    """The relative word for turning from one heading to another.

    wrap=False reproduces the original, which does not wrap the difference into (-180, 180], so
    29 -> 298 reads "right" although it is a left turn (virl.md Q1).
    """
    delta = heading - previous_heading
    if wrap:
        delta = (delta + 180.0) % 360.0 - 180.0
        if delta == -180.0:
            delta = 180.0
    if delta < -45:
        return "left"
    if delta > 45:
        return "right"
    return "slightly left" if delta <= 0 else "slightly right"


def instruction_sentences(milestones: Sequence[Milestone], initial_heading: float, wrap: bool = True) -> list[str]:
    """The 2n sentences regenerated from the milestones at every reset (virl.md §2.4)."""
    sentences = []
    previous = initial_heading
    last = len(milestones) - 1
    for k, m in enumerate(milestones):
        turn = f"turn {relative_turn(previous, m.heading, wrap)} to face {m.direction}."
        if k == 0 and k < last:
            sentences.append("First, " + turn)
        else:
            sentences.append(turn[0].upper() + turn[1:])
        if k < last:
            where = "" if m.landmarks == NO_LANDMARK else f" where {m.landmarks}"
            sentences.append(f"Move forward until you reach next intersection{where}.")
        else:
            sentences.append(f"Move forward until you reach destination where {m.landmarks}.")
        previous = m.heading
    return sentences


def number_sentences(sentences: Sequence[str]) -> str:
    return "".join(f"{i}. {s}\n" for i, s in enumerate(sentences, 1))
