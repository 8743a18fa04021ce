"""Procedural V-IRL cities and their route records: geometry, names, street-view positions, and every
record field checked against values recomputed here from the emitted lat/lng (virl.md §2.2, §2.3, §3.6)."""

from __future__ import annotations

import json
import math
import re
from functools import cache

import numpy as np
import pytest

from shiftlab.tasks.virl.geo import bearing, direction_word, haversine, relation_word, to_latlng
from shiftlab.tasks.virl.milestones import NO_LANDMARK, parse_milestone_info
from shiftlab.tasks.virl.names import PACKS, PLACE_TYPES, name_problem, name_words
from shiftlab.tasks.virl.routes import LENGTHS, decode_polyline, encode_polyline, route_record, route_records
from shiftlab.tasks.virl.world import CITIES, _build_world, build_world, district_anchor

OOD_CITIES = [c for c in CITIES if c != "new_york"]
ROUTES = [
    (city, lengths, i)
    for city in CITIES
    for lengths, count in (("train", 3), ("mini", 2))
    for i in range(count)
]
PLACE_KEYS = {
    "name": str, "geocode": list, "rating": float, "place_id": str, "distance": float, "n_reviews": int,
    "heading": float, "photo_reference": type(None), "place_types": list, "plus_code": type(None),
    "vicinity": str,
}  # fmt: skip
RESULT_KEYS = {
    "geocode_list": list, "polyline": list, "instructions": list, "distance_list": list, "time_list": list,
    "time": int, "distance": int, "n_landmarks": int, "landmark_list": list,
}  # fmt: skip


@cache
def record(city: str, lengths: str, index: int) -> dict:
    return route_record(build_world(city, 0), index, lengths)


def sign_seen_from(world, place_index: int, geocode) -> bool:
    """Visibility recomputed independently: within 25 m and less than 75 degrees off the sign's facing."""
    sign = world.scene.signs[place_index]
    sign_geocode = to_latlng(world.anchor, sign.x, sign.y)
    off = abs((bearing(sign_geocode, geocode) - sign.facing + 180) % 360 - 180)
    return haversine(sign_geocode, geocode) <= 25.0 and off < 75.0


def place_by_id(world, place_id: str) -> int:
    return next(i for i, p in enumerate(world.places) if p.place_id == place_id)


# -- worlds ------------------------------------------------------------------------------------------------


def test_registry_has_the_nine_cities():
    assert set(CITIES) == {
        "new_york",
        "milan",
        "new_delhi",
        "buenos_aires",
        "london",
        "hong_kong",
        "melbourne",
        "lagos",
        "san_francisco",
    }
    assert set(PACKS) == set(CITIES)
    assert len({CITIES[c].style for c in CITIES}) == len(CITIES)
    assert {CITIES[c].style.uppercase_signs for c in CITIES} == {True, False}


def test_unknown_city_and_bad_district_are_refused():
    with pytest.raises(ValueError, match="known cities: new_york"):
        build_world("atlantis", 0)
    for district in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="district"):
            build_world("london", district)
    with pytest.raises(ValueError, match="lengths"):
        route_record(build_world("london", 0), 0, "marathon")


@pytest.mark.parametrize("city", CITIES)
def test_world_is_a_connected_district_of_the_right_size(city):
    world = build_world(city, 0)
    graph = world.graph
    assert graph.is_connected()
    nodes = np.array(graph.nodes)
    radius = np.hypot(*(nodes - nodes.mean(axis=0)).T).max()
    assert 300 <= radius <= 700, radius
    for e in graph.edges:
        assert e.a != e.b and e.length == pytest.approx(math.dist(graph.nodes[e.a], graph.nodes[e.b]))
    assert len(world.places) == len(world.scene.signs) > 300
    assert len(world.scene.roads) == len(graph.edges)
    assert world.region.endswith(f"_{CITIES[city].code}_{CITIES[city].continent}")
    assert world.anchor == CITIES[city].anchor
    assert 1500 < haversine(district_anchor(world.anchor, 1), world.anchor) < 1700


@pytest.mark.parametrize("city", CITIES)
def test_facades_stay_off_roads_and_signs_fit_and_face_the_street(city):
    world = build_world(city, 0)
    graph = world.graph
    starts = np.array([graph.nodes[e.a] for e in graph.edges])
    ends = np.array([graph.nodes[e.b] for e in graph.edges])
    half = np.array([e.width / 2 for e in graph.edges])

    def road_clearance(points: np.ndarray) -> np.ndarray:
        """Distance from each point to the nearest kerb (negative inside a road)."""
        ab = ends - starts
        rel = points[:, None, :] - starts[None]
        t = np.clip((rel * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
        return (np.linalg.norm(rel - t[..., None] * ab, axis=-1) - half).min(axis=1)

    facades = world.scene.facades
    ends_of_facades = np.array([[(f.x0, f.y0), (f.x1, f.y1)] for f in facades]).reshape(-1, 2)
    assert road_clearance(ends_of_facades).min() >= 0.9
    floors = CITIES[city].style.floors
    for f in facades:
        assert floors[0] * 3.2 <= f.height <= floors[1] * 3.2 + 1.2
    by_position = {(round((f.x0 + f.x1) / 2, 6), round((f.y0 + f.y1) / 2, 6)): f for f in facades}
    signs = world.scene.signs
    assert len(by_position) == len(facades)
    for place, sign in zip(world.places, signs, strict=True):
        assert sign.text == (place.name.upper() if world.style.uppercase_signs else place.name)
        assert sign.facing == place.facing
        out = (math.sin(math.radians(sign.facing)), math.cos(math.radians(sign.facing)))
        facade = by_position[(round(sign.x - 0.05 * out[0], 6), round(sign.y - 0.05 * out[1], 6))]
        assert sign.width <= math.hypot(facade.x1 - facade.x0, facade.y1 - facade.y0) - 0.4
        assert sign.width == pytest.approx(0.45 * len(sign.text) + 0.6)
        assert sign.background in world.style.sign_backgrounds
    in_front = np.array(
        [
            (s.x + 3 * math.sin(math.radians(s.facing)), s.y + 3 * math.cos(math.radians(s.facing)))
            for s in signs
        ]
    )
    assert np.all(road_clearance(in_front) < road_clearance(np.array([(s.x, s.y) for s in signs])))
    for place, sign in zip(
        world.places, signs, strict=True
    ):  # the geocode is a few metres inside the building
        depth = (sign.x - place.xy[0]) * math.sin(math.radians(sign.facing)) + (
            sign.y - place.xy[1]
        ) * math.cos(math.radians(sign.facing))
        assert 1.5 <= depth <= 3.6


@pytest.mark.parametrize("city", CITIES)
def test_places_have_google_like_fields(city):
    world = build_world(city, 0)
    places = world.places
    streets = {e.street for e in world.graph.edges}
    assert len({p.place_id for p in places}) == len(places)
    for p in places:
        assert p.place_types[0] in PLACE_TYPES and p.place_types[-2:] == (
            "point_of_interest",
            "establishment",
        )
        assert p.geocode == to_latlng(world.anchor, *p.xy)
        assert 3.5 <= p.rating <= 4.9 and p.n_reviews >= 0
        assert world.district_name in p.vicinity and any(street in p.vicinity for street in streets)
    assert 30 <= np.median([p.n_reviews for p in places]) <= 120
    assert max(p.n_reviews for p in places) > 1000


# -- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("city", CITIES)
def test_names_obey_the_rules_and_are_unique(city):
    world = build_world(city, 0)
    names = [p.name for p in world.places]
    streets = sorted({e.street for e in world.graph.edges})
    for name in names + streets:
        assert name_problem(name) is None, name
        assert (
            re.fullmatch(r"[A-Za-z0-9 &.'-]{1,28}", name) and name[0] not in "'\"" and name[-1] not in "'\""
        )
        for banned in ("intersection", "destination", "no landmark", "{", "}", '"', ":", "\n"):
            assert banned not in name.lower()
    assert len({n.lower() for n in names + streets}) == len(names) + len(streets)
    vocabulary = PACKS[city].vocabulary()
    for name in names + streets:
        assert name_words(name) <= vocabulary, name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "'Quote",
        "Quote'",
        'Say "hi"',
        "A: b",
        "Brace {x}",
        "Line\nbreak",
        "The Intersection Cafe",
        "Destination Diner",
        "No landmark nearby",
        "Cafe is on your left",
        "X" * 29,
        "Caf\u00e9",
        "Tab\tBar",
        "Two  spaces",
    ],
)
def test_name_problem_rejects(name):
    assert name_problem(name) is not None


def test_new_york_shares_no_vocabulary_with_the_other_cities():
    new_york = PACKS["new_york"].vocabulary()
    made = set().union(*(name_words(p.name) for p in build_world("new_york", 0).places))
    for city in OOD_CITIES:
        assert not new_york & PACKS[city].vocabulary(), city
        world = build_world(city, 0)
        words = set().union(
            *(name_words(p.name) for p in world.places), *(name_words(e.street) for e in world.graph.edges)
        )
        assert not made & words, (city, sorted(made & words)[:5])


# -- street-view positions -------------------------------------------------------------------------------


@pytest.mark.parametrize("city", ["new_york", "milan", "hong_kong"])
def test_panos_cover_the_streets(city):
    world = build_world(city, 0)
    panos = world.panos()
    ids = [pano for _, pano in panos]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert len(panos) >= sum(e.length for e in world.graph.edges) / 12
    for geocode, pano in panos[::97]:
        assert world.nearest_pano(geocode) == (geocode, pano)
    for node in world.graph.nodes[::7]:
        hit = world.nearest_pano(to_latlng(world.anchor, *node), radius_m=1.0)
        assert hit is not None and haversine(hit[0], to_latlng(world.anchor, *node)) < 0.1
    for e in world.graph.edges[::5]:
        (ax, ay), (bx, by) = world.graph.nodes[e.a], world.graph.nodes[e.b]
        for t in (0.13, 0.5, 0.77):
            point = to_latlng(world.anchor, ax + t * (bx - ax), ay + t * (by - ay))
            hit = world.nearest_pano(point, radius_m=6.0)
            assert hit is not None and haversine(hit[0], point) <= 6.0
    far = to_latlng(world.anchor, 5000.0, -5000.0)
    assert world.nearest_pano(far) is None
    assert world.nearest_pano(far, radius_m=1e4) is not None


# -- route records ---------------------------------------------------------------------------------------


def test_records_are_deterministic_and_districts_differ():
    fresh = _build_world.__wrapped__("london", 0)
    assert fresh is not build_world("london", 0)
    ours = json.dumps(route_records(fresh, 3, "train"), sort_keys=True)
    assert ours == json.dumps([record("london", "train", i) for i in range(3)], sort_keys=True)
    other = json.dumps(route_records(build_world("london", 1), 3, "train"), sort_keys=True)
    assert other != ours
    assert fresh.places == build_world("london", 0).places and fresh.scene == build_world("london", 0).scene
    assert [p.name for p in build_world("new_york", 1).places] != [
        p.name for p in build_world("new_york", 0).places
    ]
    assert json.dumps(record("london", "train", 0)) != json.dumps(record("london", "train", 1))


@pytest.mark.parametrize(("city", "lengths", "index"), ROUTES)
def test_record_has_every_field_of_the_released_schema(city, lengths, index):
    r = record(city, lengths, index)
    assert list(r) == [
        "dest_place",
        "start_place",
        "route_results",
        "init_heading",
        "instruction",
        "milestone_info",
    ]
    for key in ("dest_place", "start_place"):
        place = r[key]
        assert set(place) == set(PLACE_KEYS) | {"region", "relocated_geocode"}
        assert place["region"] == build_world(city, 0).region
        assert len(place["relocated_geocode"]) == 2 and all(
            isinstance(v, float) for v in place["relocated_geocode"]
        )
    results = r["route_results"]
    assert set(results) == set(RESULT_KEYS)
    for key, kind in RESULT_KEYS.items():
        assert isinstance(results[key], kind), key
    n = len(results["geocode_list"])
    for key in ("polyline", "instructions", "distance_list", "time_list"):
        assert len(results[key]) == n
    assert len(results["landmark_list"]) == n - 1
    assert results["n_landmarks"] == sum(lm is not None for lm in results["landmark_list"])
    for landmark in filter(None, results["landmark_list"]):
        assert set(landmark) == set(PLACE_KEYS) | {"spatial_relation", "expression"}
    for place in [r["dest_place"], r["start_place"], *filter(None, results["landmark_list"])]:
        for key, kind in PLACE_KEYS.items():
            assert isinstance(place[key], kind), key
    assert r["init_heading"] == 0 and isinstance(r["instruction"], str) and r["instruction"]
    assert results["time_list"] == [round(d / 1.4) for d in results["distance_list"]]
    assert results["time"] == sum(results["time_list"]) and results["distance"] == sum(
        results["distance_list"]
    )
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize(("city", "lengths", "index"), ROUTES)
def test_milestone_info_matches_the_geometry(city, lengths, index):
    r = record(city, lengths, index)
    results = r["route_results"]
    points = [r["start_place"]["relocated_geocode"], *results["geocode_list"]]
    blocks = parse_milestone_info(r["milestone_info"])
    assert len(blocks) == len(results["geocode_list"])
    previous = 0
    for k, block in enumerate(blocks):
        arrival = bearing(points[k], points[k + 1])
        assert block.index == k + 1
        assert block.heading == int(arrival)
        assert f'"{int(arrival)} ({direction_word(int(arrival))})"' in r["milestone_info"]
        assert block.human_heading == previous
        assert block.distance_m == results["distance_list"][k]
        previous = int(arrival)
        if k == len(blocks) - 1:
            dest = r["dest_place"]
            relation = relation_word(bearing(points[-1], dest["geocode"]) - arrival)
            assert block.landmarks == f"The destination {dest['name']} is on your {relation}"
            side = "right" if "right" in relation else "left" if "left" in relation else None
            hint = f"Destination will be on the {side}</div>"
            assert (
                results["instructions"][k].endswith(hint)
                if side
                else "<div" not in results["instructions"][k]
            )
            continue
        landmark = results["landmark_list"][k]
        if landmark is None:
            assert block.landmarks == NO_LANDMARK
            continue
        relation = relation_word(bearing(points[k + 1], landmark["geocode"]) - arrival)
        assert landmark["spatial_relation"] == relation
        assert block.landmarks == landmark["expression"] == f"{landmark['name']} is on your {relation}"


@pytest.mark.parametrize(("city", "lengths", "index"), ROUTES)
def test_route_obeys_the_collection_filters(city, lengths, index):
    world = build_world(city, 0)
    r = record(city, lengths, index)
    results = r["route_results"]
    limits = LENGTHS[lengths]
    points = [r["start_place"]["relocated_geocode"], *results["geocode_list"]]
    assert limits.milestones[0] <= len(results["geocode_list"]) <= limits.milestones[1]
    assert limits.distance[0] - 1 <= results["distance"] <= limits.distance[1] + 1
    assert all(haversine(a, b) >= 12.0 for a, b in zip(points, points[1:], strict=False))
    for point in points:
        hit = world.nearest_pano(point)
        assert hit is not None and haversine(hit[0], point) < 1e-6
    start, dest = world.places[place_by_id(world, r["start_place"]["place_id"])], r["dest_place"]
    assert start.name == r["start_place"]["name"]
    low, high = limits.start_radius
    assert low - 1 <= haversine(start.geocode, dest["geocode"]) <= high + 1
    dest_index = place_by_id(world, dest["place_id"])
    assert haversine(dest["geocode"], points[-1]) <= 18.0
    assert world.nearest_pano(dest["geocode"])[0] == tuple(points[-1])
    assert sign_seen_from(world, dest_index, points[-1])
    for point, polyline in zip(points, results["polyline"], strict=False):
        decoded = decode_polyline(polyline)
        assert max(abs(decoded[0][0] - point[0]), abs(decoded[0][1] - point[1])) <= 6e-6
    for point, polyline in zip(results["geocode_list"], results["polyline"], strict=True):
        decoded = decode_polyline(polyline)
        assert max(abs(decoded[-1][0] - point[0]), abs(decoded[-1][1] - point[1])) <= 6e-6
    first_segment = [
        world.nearest_pano(p, radius_m=1.0)[0] for p in decode_polyline(results["polyline"][0])[:2]
    ]
    assert results["instructions"][0].startswith(
        f"Head <b>{direction_word(bearing(*first_segment))}</b> on <b>"
    )
    assert all(
        re.match(r"(Turn <b>(slight |sharp )?(left|right)</b>|Continue) ", line)
        for line in results["instructions"][1:]
    )


@pytest.mark.parametrize(("city", "lengths", "index"), ROUTES)
def test_landmarks_follow_the_virl_rule_with_visible_signs(city, lengths, index):
    world = build_world(city, 0)
    r = record(city, lengths, index)
    excluded = {r["start_place"]["place_id"], r["dest_place"]["place_id"]}
    for milestone, landmark in zip(
        r["route_results"]["geocode_list"], r["route_results"]["landmark_list"], strict=False
    ):
        eligible = [
            i for i, p in enumerate(world.places)
            if p.place_id not in excluded and p.n_reviews >= 10 and haversine(milestone, p.geocode) <= 18.0
            and sign_seen_from(world, i, milestone)
        ]  # fmt: skip
        if landmark is None:
            assert not eligible
            continue
        chosen = place_by_id(world, landmark["place_id"])
        assert chosen in eligible
        assert world.places[chosen].n_reviews == max(world.places[i].n_reviews for i in eligible)
        assert landmark["distance"] == pytest.approx(haversine(milestone, landmark["geocode"]))


def test_polyline_encoding_matches_googles_documented_example():
    points = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert encode_polyline(points) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert decode_polyline(encode_polyline(points)) == points
