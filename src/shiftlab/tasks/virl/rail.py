"""The rail: the expert trajectory of a route, one point per decision (virl.md §2.5).

At each point the agent must give the ground-truth action. Milestones demand a turn (absolute: the
compass direction of the next leg; relative: left/right/slightly ...), the legs between them are
cut into a few `forward()` points, and the destination demands `stop()`.

The original's quirks are reproduced when asked for through `RailOptions`:
- Q1 `wrap_turns=False`: relative turns computed without wrapping the angle difference;
- Q6 `include_endpoint=True`: leg candidates at i/L for i = 1..L, so the last lands on the milestone;
- Q7 `advance_on_short_legs=False`: a leg of 5 m or less does not consume its instruction sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shiftlab.tasks.virl.geo import LatLng, haversine, interpolate
from shiftlab.tasks.virl.milestones import (
    Milestone,
    instruction_sentences,
    number_sentences,
    parse_milestone_info,
    relative_turn,
)

NO_LANDMARKS = "No landmarks nearby"  # the rail's own wording differs from milestone_info's; both kept (Q13)
INTERSECTION = "You observe an intersection"
FORWARD, STOP = "forward()", "stop()"
ABSOLUTE_DIRECTIONS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
RELATIVE_DIRECTIONS = ("left", "right", "slightly left", "slightly right")
ACTION_SPACES = ("absolute", "relative")
_MIN_LEG_M = 5.0
_MIN_SNAP_GAP_M = 8.0

Relocate = Callable[[LatLng], LatLng | None]


def turn(direction: str) -> str:
    return f"turn_direction({direction})"


def action_set(action_space: str) -> tuple[str, ...]:
    """Every action string valid in an action space."""
    words = ABSOLUTE_DIRECTIONS if action_space == "absolute" else RELATIVE_DIRECTIONS
    return (FORWARD, *map(turn, words), STOP)


@dataclass(frozen=True)
class RailOptions:
    straight_line_length: int = 5  # forward candidates per leg
    drop_rate: float = 0.5  # chance to drop each candidate, redrawn at every reset
    relocation: bool = True  # snap points to the nearest street-view position
    wrap_turns: bool = True
    include_endpoint: bool = False
    advance_on_short_legs: bool = True


@dataclass(frozen=True)
class RailPoint:
    geocode: LatLng
    heading: float
    absolute_action: str
    relative_action: str
    landmark: str  # what the oracle sees: a landmark sentence, or "No landmarks nearby"
    intersection: bool
    sentence: int  # 0-based index of the instruction sentence being executed

    def action(self, action_space: str) -> str:
        return self.absolute_action if action_space == "absolute" else self.relative_action

    @property
    def oracle_text(self) -> str:
        """The text observation, as the original writes it (trailing space included)."""
        flag = INTERSECTION if self.intersection and self.absolute_action != STOP else ""
        return f"{self.landmark}; {flag}"


@dataclass(frozen=True)
class Rail:
    points: tuple[RailPoint, ...]
    sentences: tuple[str, ...]
    initial_heading: float

    @property
    def instruction(self) -> str:
        return number_sentences(self.sentences)


def _start(record: Mapping) -> LatLng:
    lat, lng = record["start_place"]["relocated_geocode"]
    return float(lat), float(lng)


def route_milestones(record: Mapping) -> tuple[LatLng, list[LatLng], list[Milestone]]:
    """Start, milestone positions and parsed milestone blocks of a route record."""
    milestones = parse_milestone_info(record["milestone_info"])
    positions = [(float(lat), float(lng)) for lat, lng in record["route_results"]["geocode_list"]]
    if len(positions) != len(milestones):
        raise ValueError(f"route has {len(positions)} milestone positions but {len(milestones)} milestone blocks")
    return _start(record), positions, milestones


def build_rail(
    record: Mapping,
    initial_heading: float,
    rng: np.random.Generator,
    options: RailOptions = RailOptions(),
    relocate: Relocate | None = None,
) -> Rail:
    """The expert trajectory of one episode; `rng` draws which forward candidates are dropped."""
    start, positions, milestones = route_milestones(record)
    sentences = instruction_sentences(milestones, initial_heading, wrap=options.wrap_turns)
    headings = [float(initial_heading), *(float(m.heading) for m in milestones)]
    absolute = [*(turn(m.direction) for m in milestones), STOP]
    relative, previous = [], float(initial_heading)
    for m in milestones:
        relative.append(turn(relative_turn(previous, m.heading, options.wrap_turns)))
        previous = m.heading
    relative.append(STOP)
    landmarks = [NO_LANDMARKS, *(m.landmarks for m in milestones)]

    def snap(point: LatLng) -> LatLng | None:
        return relocate(point) if options.relocation and relocate is not None else point

    points: list[RailPoint] = []
    sentence, previous_point = 0, start
    for idx, goal in enumerate([start, *positions]):
        goal = snap(goal) or goal  # a milestone with no street view nearby keeps its own position (Q8)
        leg = haversine(previous_point, goal)
        if leg > _MIN_LEG_M:
            count = options.straight_line_length
            for i in range(1, count + 1):
                if rng.random() < options.drop_rate:
                    continue
                fraction = i / count if options.include_endpoint else i / (count + 1)
                candidate = snap(interpolate(previous_point, goal, fraction))
                if candidate is None:
                    continue
                if options.relocation and relocate is not None and (
                    haversine(candidate, previous_point) <= _MIN_SNAP_GAP_M
                    or haversine(candidate, goal) <= _MIN_SNAP_GAP_M
                ):
                    continue
                if not options.include_endpoint and points and points[-1].geocode == candidate:
                    continue
                points.append(RailPoint(candidate, headings[idx], FORWARD, FORWARD, NO_LANDMARKS, False, sentence))
        if leg > _MIN_LEG_M or (idx > 0 and options.advance_on_short_legs):
            sentence += 1  # the leg's "Move forward ..." sentence is done
        if absolute[idx] == STOP:
            sentence -= 1  # the stop shares the final "Move forward ..." sentence
        points.append(RailPoint(goal, headings[idx], absolute[idx], relative[idx], landmarks[idx], idx > 0, sentence))
        sentence += 1
        previous_point = goal
    return Rail(tuple(points), tuple(sentences), float(initial_heading))


def history_lines(points: Sequence[RailPoint], current: int, action_space: str, current_text: str | None = None) -> str:
    """The observation/action history up to the current point (O_i / A_i lines, as the original): past
    points with their ground-truth actions, then the current observation with an empty action."""
    lines = [f"O_{i + 1}: {p.oracle_text}\nA_{i + 1}: {p.action(action_space)}\n" for i, p in enumerate(points[:current])]
    text = points[current].oracle_text if current_text is None else current_text
    lines.append(f"O_{current + 1}: {text}\nA_{current + 1}: \n")
    return "".join(lines)
