"""The rail (expert trajectory) and the V-IRL verifier, on the worked example of virl.md §2.11."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from shiftlab.tasks.virl.expert import format_answer
from shiftlab.tasks.virl.rail import STOP, RailOptions, action_set, build_rail, history_lines
from shiftlab.tasks.virl.verifier import Outcome, normalize_action, verify

RECORD = json.loads((Path(__file__).parent / "data" / "virl_example_route.json").read_text())
LEGACY = RailOptions(straight_line_length=2, drop_rate=0.0, relocation=True, wrap_turns=False,
                     include_endpoint=True, advance_on_short_legs=False)


def identity(point):
    return round(point[0], 7), round(point[1], 7)


def test_legacy_rail_reproduces_the_worked_example():
    rail = build_rail(RECORD, 200, np.random.default_rng(0), LEGACY, relocate=identity)
    assert [p.absolute_action for p in rail.points] == [
        "turn_direction(northeast)", "forward()", "turn_direction(northwest)", "forward()",
        "turn_direction(northeast)", "forward()", "stop()"]
    assert [p.relative_action for p in rail.points] == [
        "turn_direction(left)", "forward()", "turn_direction(right)", "forward()", "turn_direction(left)",
        "forward()", "stop()"]
    assert [p.sentence + 1 for p in rail.points] == [1, 2, 3, 4, 5, 6, 6]
    assert [p.heading for p in rail.points] == [200, 29, 29, 298, 298, 29, 29]
    assert rail.points[1].geocode == (40.7294146, -73.9984698)
    assert rail.points[2].oracle_text == "Quill Street Pharmacy is on your right front; You observe an intersection"
    assert rail.points[6].oracle_text == "The destination Marrowbone Noodle Bar is on your right; "
    history = history_lines(rail.points, 6, "absolute")
    assert history.startswith("O_1: No landmarks nearby; \nA_1: turn_direction(northeast)\n")
    assert history.endswith("O_7: The destination Marrowbone Noodle Bar is on your right; \nA_7: \n")


def test_fixed_rail_wraps_turns_and_never_repeats_a_point():
    rail = build_rail(RECORD, 200, np.random.default_rng(0), RailOptions(drop_rate=0.0, relocation=False))
    relative = [p.relative_action for p in rail.points if p.relative_action.startswith("turn")]
    assert relative == ["turn_direction(left)", "turn_direction(left)", "turn_direction(right)"]
    geocodes = [p.geocode for p in rail.points]
    assert all(a != b for a, b in zip(geocodes, geocodes[1:], strict=False))
    assert len(rail.points) == 3 * 5 + 4  # five forward points per leg, three milestones and the start


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("options", [RailOptions(), RailOptions(relocation=False), LEGACY])
def test_rail_invariants(seed, options):
    rail = build_rail(RECORD, float(seed * 17 % 360), np.random.default_rng(seed), options, relocate=identity)
    actions = [p.absolute_action for p in rail.points]
    assert actions[-1] == STOP and actions.count(STOP) == 1
    assert sum(a.startswith("turn_direction") for a in actions) == 3  # one turn per milestone
    assert len(rail.sentences) == 2 * 3
    sentences = [p.sentence for p in rail.points]
    assert sentences == sorted(sentences) and sentences[-1] == len(rail.sentences) - 1
    for point in rail.points:
        shows = "You observe an intersection" in point.oracle_text
        assert shows == (point.absolute_action.startswith("turn") and point is not rail.points[0])


def test_drop_rate_is_drawn_from_the_given_generator():
    a = build_rail(RECORD, 0, np.random.default_rng(5), RailOptions(), relocate=identity)
    b = build_rail(RECORD, 0, np.random.default_rng(5), RailOptions(), relocate=identity)
    counts = {len(build_rail(RECORD, 0, np.random.default_rng(s), RailOptions(), relocate=identity).points)
              for s in range(30)}
    assert a == b and len(counts) > 3


def test_a_failed_snap_keeps_milestones_and_skips_forward_points():
    rail = build_rail(RECORD, 0, np.random.default_rng(0), RailOptions(drop_rate=0.0), relocate=lambda p: None)
    assert [p.absolute_action for p in rail.points].count("forward()") == 0
    assert rail.points[-1].geocode == tuple(RECORD["route_results"]["geocode_list"][-1])


def test_action_sets():
    assert action_set("absolute")[1] == "turn_direction(north)" and len(action_set("absolute")) == 10
    assert action_set("relative")[1:5] == ("turn_direction(left)", "turn_direction(right)",
                                          "turn_direction(slightly left)", "turn_direction(slightly right)")


# -- the verifier ---------------------------------------------------------------------------------

RAIL = build_rail(RECORD, 200, np.random.default_rng(0), LEGACY, relocate=identity)
AT_MILESTONE, AT_FORWARD = RAIL.points[2], RAIL.points[1]


def answer(action, observation="No landmarks nearby"):
    return format_answer(observation, "whatever", action)


def test_correct_action():
    verdict = verify(answer("turn_direction(northwest)", AT_MILESTONE.oracle_text), AT_MILESTONE, "absolute")
    assert verdict.outcome is Outcome.CORRECT and verdict.reward == 1.0


def test_wrong_action_without_intersection_confusion():
    verdict = verify(answer("turn_direction(north)"), AT_FORWARD, "absolute")
    assert verdict.outcome is Outcome.WRONG_ACTION and verdict.reward == -1.0
    assert "{" in verdict.feedback and "{{" not in verdict.feedback


def test_intersection_check_fixed_and_legacy():
    said = answer("turn_direction(north)", "You observe an intersection")
    fixed = verify(said, AT_MILESTONE, "absolute")
    assert fixed.outcome is Outcome.WRONG_ACTION  # it is at an intersection: saying so is right
    legacy = verify(said, AT_MILESTONE, "absolute", intersection_from_landmark_only=True)
    assert legacy.outcome is Outcome.WRONG_OBSERVATION and "not at any intersection" in legacy.feedback
    missed = verify(answer("turn_direction(north)", "nothing here"), AT_MILESTONE, "absolute")
    assert missed.outcome is Outcome.WRONG_OBSERVATION and missed.reward == -1.5
    invented = verify(answer("turn_direction(north)", "an intersection"), AT_FORWARD, "absolute")
    assert invented.outcome is Outcome.WRONG_OBSERVATION


@pytest.mark.parametrize("text", [
    '{"current observation": "x", "action": "Turn_Direction( NorthWest )"}',
    "{'current observation': 'an intersection', 'action': 'turn_direction(northwest)',}",
    '```json\n{"action": "turn_direction(\'northwest\')"}\n```',
    'I think... {"action": "forward()"} no wait: {"action": "turn_direction(northwest)"}',
])
def test_lenient_parsing(text):
    assert verify(text, AT_MILESTONE, "absolute").correct
    assert not verify(re.sub("northwest", "north", text, flags=re.IGNORECASE), AT_MILESTONE, "absolute").correct


def test_strict_parsing_is_the_originals():
    assert not verify('{"action": "Turn_direction(northwest)"}', AT_MILESTONE, "absolute", strict_parsing=True).correct
    assert verify('{"action": "turn_direction(northwest)",}', AT_MILESTONE, "absolute", strict_parsing=True).correct


def test_relative_action_space():
    assert verify(answer("turn_direction(right)"), AT_MILESTONE, "relative").correct
    assert not verify(answer("turn_direction(northwest)"), AT_MILESTONE, "relative").correct


def test_literal_braces_flag():
    feedback = verify(answer("stop()"), AT_FORWARD, "absolute", literal_double_braces=True).feedback
    assert "{{" in feedback and "}}" in feedback


@pytest.mark.parametrize("response", [None, 7, b"\xff", "", "x" * 200_000, '"action": "' + "(" * 10_000, "\x00"])
def test_any_input_is_scored(response):
    verdict = verify(response, AT_FORWARD, "absolute")
    assert verdict.reward in (-1.0, -1.5) and verdict.feedback


@pytest.mark.parametrize(("raw", "normal"), [("forward", "forward()"), (" STOP() ", "stop()"),
                                              ("turn_direction(slightly  left)", "turn_direction(slightly left)")])
def test_normalize_action(raw, normal):
    assert normalize_action(raw) == normal


def test_short_legs_keep_the_instruction_index_unless_asked_otherwise():
    """Q7: a milestone 3 m after the previous one. The fix still consumes its 'Move forward' sentence."""
    record = json.loads(json.dumps(RECORD))
    first = record["route_results"]["geocode_list"][0]
    record["route_results"]["geocode_list"][1] = [first[0] + 0.000027, first[1]]  # about 3 m north
    fixed = build_rail(record, 0, np.random.default_rng(0), RailOptions(drop_rate=0.0, relocation=False))
    legacy = build_rail(record, 0, np.random.default_rng(0),
                        RailOptions(drop_rate=0.0, relocation=False, advance_on_short_legs=False))
    turn_sentences = [p.sentence for p in fixed.points if p.absolute_action != "forward()"]
    assert turn_sentences == [0, 2, 4, 5]  # each turn at its own "Turn ..." sentence, the stop at the last
    legacy_sentences = [p.sentence for p in legacy.points if p.absolute_action != "forward()"]
    assert legacy_sentences == [0, 2, 3, 4]  # off by one after the short leg, as the original
