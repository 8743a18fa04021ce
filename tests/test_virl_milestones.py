"""milestone_info text, geodesy and instructions, checked against the worked example of virl.md §2.11."""

from __future__ import annotations

import pytest

from shiftlab.tasks.virl.geo import bearing, direction_word, haversine, relation_word, to_latlng, to_xy
from shiftlab.tasks.virl.milestones import (
    Milestone,
    MilestoneFormatError,
    format_milestone_info,
    instruction_sentences,
    number_sentences,
    parse_milestone_info,
    relative_turn,
)

EXAMPLE = (
    '\n{\n"intersection_idx": "1",\n"landmarks": "Quill Street Pharmacy is on your right front",\n'
    '"distance": "80 meters",\n"human_heading": "0",\n"to_next_intersection_heading": "29 (northeast)",\n}\n'
    '\n{\n"intersection_idx": "2",\n"landmarks": "No landmark nearby",\n"distance": "120 meters",\n'
    '"human_heading": "29",\n"to_next_intersection_heading": "298 (northwest)",\n}\n'
    '\n{\n"intersection_idx": "3",\n"landmarks": "The destination Marrowbone Noodle Bar is on your right",\n'
    '"distance": "60 meters",\n"human_heading": "298",\n"to_next_intersection_heading": "29 (northeast)",\n}\n'
)


def test_round_trip_is_byte_exact():
    milestones = parse_milestone_info(EXAMPLE)
    assert [m.heading for m in milestones] == [29, 298, 29]
    assert [m.direction for m in milestones] == ["northeast", "northwest", "northeast"]
    assert milestones[0].landmarks == "Quill Street Pharmacy is on your right front"
    assert format_milestone_info(milestones) == EXAMPLE


def test_geodesy_reproduces_the_example():
    m1, m2 = (40.7297292, -73.9982397), (40.7302524, -73.9994853)
    assert int(bearing(m1, m2)) == 298 and round(haversine(m1, m2)) == 120
    landmark = (40.7297311, -73.9980973)
    assert round(haversine(m1, landmark), 3) == 12.001
    assert relation_word(bearing(m1, landmark) - 29) == "right front"
    anchor = (40.73, -73.99)
    assert to_latlng(anchor, *to_xy(anchor, m1)) == pytest.approx(m1, abs=1e-7)


@pytest.mark.parametrize(("degrees", "word"), [(22, "north"), (23, "northeast"), (22.5, "north"), (298, "northwest"),
                                                (337, "northwest"), (338, "north"), (180, "south")])
def test_direction_words(degrees, word):
    assert direction_word(degrees) == word


def test_instructions_legacy_and_wrapped():
    milestones = parse_milestone_info(EXAMPLE)
    legacy = number_sentences(instruction_sentences(milestones, 200, wrap=False))
    assert legacy.splitlines() == [
        "1. First, turn left to face northeast.",
        "2. Move forward until you reach next intersection where Quill Street Pharmacy is on your right front.",
        "3. Turn right to face northwest.",
        "4. Move forward until you reach next intersection.",
        "5. Turn left to face northeast.",
        "6. Move forward until you reach destination where The destination Marrowbone Noodle Bar is on your right.",
    ]
    fixed = instruction_sentences(milestones, 200, wrap=True)
    assert fixed[2] == "Turn left to face northwest." and fixed[4] == "Turn right to face northeast."


@pytest.mark.parametrize(("before", "after", "wrap", "word"), [
    (29, 298, False, "right"), (29, 298, True, "left"), (298, 29, True, "right"), (10, 10, True, "slightly left"),
    (350, 10, True, "slightly right"), (350, 10, False, "left"), (0, 180, True, "right"), (90, 30, True, "left"),
])
def test_relative_turns(before, after, wrap, word):
    assert relative_turn(before, after, wrap) == word


def test_single_milestone_route_has_no_first():
    (only,) = parse_milestone_info(EXAMPLE)[2:]
    assert instruction_sentences([only], 0)[0] == "Turn slightly right to face northeast."


@pytest.mark.parametrize("bad", ["", "{", "}\n", '\n{\n"a": "b"\n}\n', '\n{\n"to_next_intersection_heading": "x",\n}\n',
                                 EXAMPLE.replace("\n}\n\n{", "\n\n{"), 42])
def test_malformed_text_raises_format_error(bad):
    with pytest.raises(MilestoneFormatError):
        parse_milestone_info(bad)


def test_writer_refuses_text_that_would_break_the_format():
    with pytest.raises(MilestoneFormatError):
        format_milestone_info([Milestone(1, 'A "quoted" shop is on your left', 10, 0, 0)])
