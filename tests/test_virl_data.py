"""The real-data backend of V-IRL on format-exact fixtures: routes, the pano map, panoramas and views.

The fixtures are written with export_dataset from synthetic panoramas whose colours encode the compass
heading of each column, so a view's centre pixel says which way the camera looked.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shiftlab.tasks.virl import data, panorama
from shiftlab.tasks.virl.data import DataError, PanoramaStore, export_dataset, load_routes, validate_dataset
from shiftlab.tasks.virl.geo import haversine, to_latlng
from shiftlab.tasks.virl.panorama import (
    equirect_column_heading,
    equirect_row_elevation,
    perspective_from_equirect,
    rotate_equirect,
)

# The worked example of virl.md §2.11, verbatim.
ROUTE = json.loads(r"""
{
  "dest_place": {
    "name": "Marrowbone Noodle Bar",
    "geocode": [40.7306851, -73.9990467],
    "rating": 4.6,
    "place_id": "vw_nyc_p_000977",
    "distance": 178.65975012906443,
    "n_reviews": 1288,
    "heading": 350.5890105548137,
    "photo_reference": null,
    "place_types": ["restaurant", "food", "point_of_interest", "establishment"],
    "plus_code": null,
    "vicinity": "41 Larch Avenue, Westhaven",
    "region": "Westhaven_NYC_North_America",
    "relocated_geocode": [40.7307243, -73.9991401]
  },
  "start_place": {
    "name": "Hollis & Vane Stationers",
    "geocode": [40.7291305, -73.9987727],
    "rating": 4.4,
    "place_id": "vw_nyc_p_000355",
    "distance": 174.3986584484861,
    "n_reviews": 57,
    "heading": 172.3923938207662,
    "photo_reference": null,
    "place_types": ["book_store", "store", "point_of_interest", "establishment"],
    "plus_code": null,
    "vicinity": "7 Orchard Row, Westhaven",
    "region": "Westhaven_NYC_North_America",
    "relocated_geocode": [40.7291, -73.9987]
  },
  "route_results": {
    "geocode_list": [
      [40.7297292, -73.9982397],
      [40.7302524, -73.9994853],
      [40.7307243, -73.9991401]
    ],
    "polyline": ["{{qwFzzsbM}B{A", "y_rwF~wsbMgBxF", "acrwFx_tbM}AeA"],
    "instructions": [
      "Head <b>northeast</b> on <b>Orchard Row</b> toward <b>Quill St</b>",
      "Turn <b>left</b> onto <b>Quill St</b>",
      "Turn <b>right</b> onto <b>Larch Ave</b>"
    ],
    "distance_list": [80, 120, 60],
    "time_list": [57, 86, 43],
    "time": 186,
    "distance": 260,
    "n_landmarks": 1,
    "landmark_list": [
      {
        "name": "Quill Street Pharmacy",
        "geocode": [40.7297311, -73.9980973],
        "rating": 4.3,
        "place_id": "vw_nyc_p_000412",
        "distance": 12.00091895891559,
        "n_reviews": 213,
        "heading": 88.99123700959922,
        "photo_reference": null,
        "place_types": ["pharmacy", "health", "store", "point_of_interest", "establishment"],
        "plus_code": null,
        "vicinity": "118 Quill Street, Westhaven",
        "spatial_relation": "right front",
        "expression": "Quill Street Pharmacy is on your right front"
      },
      null
    ]
  },
  "init_heading": 0
}
""")
# The two long strings of the record, split over lines here; they equal the document's byte for byte.
ROUTE["instruction"] = (
    "First, turn to face northeast and walk straight until you reach the next intersection, with Quill "
    "Street Pharmacy on your right front.\nNext, turn left and head northwest until you reach the following "
    "intersection.\nFinally, turn right to face northeast and walk a short distance; your destination, "
    "Marrowbone Noodle Bar, will be on your right."
)
ROUTE["milestone_info"] = "".join(
    "\n{\n"
    f'"intersection_idx": "{index}",\n'
    f'"landmarks": "{landmarks}",\n'
    f'"distance": "{distance} meters",\n'
    f'"human_heading": "{human}",\n'
    f'"to_next_intersection_heading": "{heading}",\n'
    "}\n"
    for index, landmarks, distance, human, heading in (
        (1, "Quill Street Pharmacy is on your right front", 80, 0, "29 (northeast)"),
        (2, "No landmark nearby", 120, 29, "298 (northwest)"),
        (3, "The destination Marrowbone Noodle Bar is on your right", 60, 298, "29 (northeast)"),
    )
)

START = tuple(ROUTE["start_place"]["relocated_geocode"])
POINTS = [START] + [tuple(p) for p in ROUTE["route_results"]["geocode_list"]]
PANOS = [(p, f"pano_{i}") for i, p in enumerate(POINTS)]
SECTORS = {0: (255, 0, 0), 90: (0, 255, 0), 180: (0, 0, 255), 270: (255, 255, 0)}  # N, E, S, W
WIDTH, HEIGHT = 512, 256


def sector_pano(_geocode=None) -> np.ndarray:
    """Each column coloured by the compass quadrant it faces at rotation 0."""
    heading = equirect_column_heading(np.arange(WIDTH), WIDTH)
    quadrant = (((heading + 45.0) % 360.0) // 90.0).astype(int) * 90
    pano = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for centre, colour in SECTORS.items():
        pano[:, quadrant == centre] = colour
    return pano


def hue_pano(_geocode=None) -> np.ndarray:
    """R, G = cos, sin of the column's heading, B = the row: smooth, so views can be compared pixelwise."""
    rad = np.radians(equirect_column_heading(np.arange(WIDTH), WIDTH))
    pano = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pano[..., 0] = np.rint(127.5 + 127.5 * np.cos(rad))
    pano[..., 1] = np.rint(127.5 + 127.5 * np.sin(rad))
    pano[..., 2] = np.rint(np.linspace(0, 255, HEIGHT))[:, None]
    return pano


def decoded_heading(pixel: np.ndarray) -> float:
    red, green = (float(v) - 127.5 for v in pixel[:2])
    return math.degrees(math.atan2(green, red)) % 360.0


def angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def make_dataset(root: Path, render=sector_pano, rotation=0.0, routes=None) -> Path:
    routes = [ROUTE] if routes is None else routes
    export_dataset(routes, PANOS, root, render, rotation=rotation, jpeg_quality=95)
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "routes")


def write_routes(root: Path, content: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "route_infos.json").write_text(json.dumps(content), encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------------- export


def test_export_writes_the_released_layout_and_loads_back(dataset: Path):
    stored = json.loads((dataset / "route_infos.json").read_text(encoding="utf-8"))
    assert stored == [[ROUTE], 1]
    with (dataset / "gps_pano_mapping.pkl").open("rb") as handle:
        assert pickle.load(handle) == {p: i for p, i in PANOS}
    for _, pano_id in PANOS:
        assert (dataset / "street_views" / f"{pano_id}.jpg").is_file()
        meta = json.loads((dataset / "street_views" / f"{pano_id}.metadata.json").read_text())
        assert meta == {"rotation": 0.0}
    assert load_routes(dataset) == [ROUTE]
    validate_dataset(dataset)


def test_export_keeps_non_ascii_text_and_per_pano_rotation(tmp_path: Path):
    route = copy.deepcopy(ROUTE)
    route["dest_place"]["name"] = "Café Ñandú"
    rotations = {pano_id: 10.0 * i for i, (_, pano_id) in enumerate(PANOS)}
    root = make_dataset(tmp_path, routes=[route], rotation=rotations.__getitem__)
    assert "Café Ñandú" in (root / "route_infos.json").read_text(encoding="utf-8")
    store = PanoramaStore(root)
    for pano_id, rotation in rotations.items():
        assert store.panorama(pano_id)[1] == rotation


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(ROUTE, id="single-dict"),
        pytest.param([ROUTE, ROUTE], id="bare-list"),
        pytest.param([[ROUTE, ROUTE], 57], id="wrapped-with-dest-idx"),
    ],
)
def test_all_three_shapes_load_and_n_is_not_a_count(tmp_path: Path, content):
    routes = load_routes(write_routes(tmp_path, content))
    expected = 1 if isinstance(content, dict) else 2
    assert routes == [ROUTE] * expected


# ------------------------------------------------------------------------------------------- relocate


def test_relocate_hits_within_the_radius_and_misses_beyond(dataset: Path):
    store = PanoramaStore(dataset)
    assert len(store) == len(PANOS)
    for point, pano_id in PANOS:
        assert store.relocate(point) == (point, pano_id)
        for bearing in (0.0, 45.0, 200.0):
            for metres, hit in ((15.0, True), (19.5, True), (25.0, False), (40.0, False)):
                east = metres * math.sin(math.radians(bearing))
                north = metres * math.cos(math.radians(bearing))
                query = to_latlng(point, east, north)
                assert (store.relocate(query) == (point, pano_id)) is hit, (pano_id, bearing, metres)
    assert PanoramaStore(dataset, mapping_radius_m=50.0).relocate(to_latlng(START, 40.0, 0.0))[1] == "pano_0"


def test_relocate_agrees_with_brute_force_anywhere_on_earth(tmp_path: Path):
    rng = np.random.default_rng(7)
    # New York, Lagos, London, Melbourne, Fiji astride the antimeridian, and next to the pole.
    centres = [(40.73, -73.99), (6.5, 3.35), (51.51, -0.14), (-37.82, 144.96), (-16.8, 179.9995), (89.9, 10)]

    def near(lat: float, lng: float) -> tuple[float, float]:
        p_lat = min(90.0, lat + rng.normal(0, 0.0004))
        p_lng = (lng + rng.normal(0, 0.0004) + 180.0) % 360.0 - 180.0
        return round(p_lat, 7), round(p_lng, 7)

    points = [near(*centre) for centre in centres for _ in range(150)]
    mapping = {p: f"p{i}" for i, p in enumerate(points)}
    tmp_path.joinpath("gps_pano_mapping.pkl").write_bytes(pickle.dumps(mapping, protocol=4))
    store = PanoramaStore(tmp_path)
    for lat, lng in centres:
        for _ in range(60):
            query = near(lat, lng)
            best = min(points, key=lambda p, q=query: (haversine(q, p), p))
            expected = (best, mapping[best]) if haversine(query, best) <= 20.0 else None
            assert store.relocate(query) == expected


def test_keys_and_values_are_normalised(tmp_path: Path):
    raw = {(np.float64(40.5), np.float32(-73.25)): np.str_("a"), (40, -73): b"b", (41.0, -73.0): "c"}
    tmp_path.joinpath("gps_pano_mapping.pkl").write_bytes(pickle.dumps(raw, protocol=4))
    mapping = PanoramaStore(tmp_path).mapping
    assert mapping == {(40.5, -73.25): "a", (40.0, -73.0): "b", (41.0, -73.0): "c"}
    assert all(type(v) is str and all(type(c) is float for c in k) for k, v in mapping.items())


# ---------------------------------------------------------------------------------------------- views


@pytest.mark.parametrize("rotation", [0.0, 37.0, -123.5])
def test_views_face_the_requested_compass_heading(tmp_path: Path, rotation: float):
    store = PanoramaStore(make_dataset(tmp_path, rotation=rotation))
    assert store.panorama("pano_1")[1] == rotation
    views = store.views("pano_1", list(SECTORS), size=64)
    for (heading, colour), view in zip(SECTORS.items(), views, strict=True):
        assert view.shape == (64, 64, 3) and view.dtype == np.uint8
        centre = view[30:34, 30:34].reshape(-1, 3).astype(int)
        assert np.abs(centre - colour).max() <= 12, (rotation, heading, centre[0])


def test_rotated_storage_gives_the_same_views(tmp_path: Path):
    plain = PanoramaStore(make_dataset(tmp_path / "r0", render=hue_pano))
    turned = PanoramaStore(make_dataset(tmp_path / "r37", render=hue_pano, rotation=37.0))
    headings = [0.0, 29.0, 90.0, 180.0, 270.0, 333.3]
    point = to_latlng(POINTS[2], 5.0, -5.0)
    views = plain.views(point, headings, size=96), turned.views(point, headings, size=96)
    for a, b, heading in zip(*views, headings, strict=True):
        diff = np.abs(a.astype(int) - b)
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6, heading
        assert angle_gap(decoded_heading(b[47, 47]), heading) < 2.0


def test_views_are_cached_read_only_and_keyed_by_size(dataset: Path):
    store = PanoramaStore(dataset, cache_size=8)
    first = store.views("pano_2", [10.0, 100.0])
    again = store.views("pano_2", [370.0, 100.0])
    assert first[0] is again[0] and first[1] is again[1]
    assert not first[0].flags.writeable
    with pytest.raises(ValueError):
        first[0][0, 0] = 0
    assert store.views("pano_2", [10.0], size=32)[0].shape == (32, 32, 3)
    assert store.views(POINTS[2], [10.0])[0] is first[0]


# ------------------------------------------------------------------------------------------- geometry


def _literal_sample_points(size: int, fov: float, heading: float, rotation: float, pitch: float, width: int,
                           height: int, pixels) -> list[tuple[float, float]]:
    """X, Y of each pixel computed the long way: explicit rotation matrices, then atan2 / asin (§3.2)."""

    def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
        x, y, z = axis / np.linalg.norm(axis)
        k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
        return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k

    turn = math.radians(((heading - 180.0) % 360.0 + rotation) % 360.0)
    r1 = axis_angle(np.array([0.0, 1.0, 0.0]), turn)
    r2 = axis_angle(r1 @ np.array([1.0, 0.0, 0.0]), math.radians(pitch))
    f = size / (2 * math.tan(math.radians(fov) / 2))
    c = (size - 1) / 2
    out = []
    for u, v in pixels:
        ray = r2 @ r1 @ np.array([(u - c) / f, (v - c) / f, 1.0])
        ray /= np.linalg.norm(ray)
        lon, lat = math.atan2(ray[0], ray[2]), math.asin(ray[1])
        out.append(((lon / (2 * math.pi) + 0.5) * (width - 1), (lat / math.pi + 0.5) * (height - 1)))
    return out


@pytest.mark.parametrize(
    ("heading", "rotation", "pitch", "fov"),
    [(0.0, 0.0, 0.0, 90.0), (123.4, 37.0, 15.0, 90.0), (301.0, -80.0, -20.0, 60.0)],
)
def test_sampling_follows_the_literal_formula(heading, rotation, pitch, fov):
    height, width, size = 64, 128, 33
    # A pano holding its own (X, Y) coordinates: bilinear sampling returns the sample point itself.
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pano = np.stack([xs, ys], axis=-1)
    view = perspective_from_equirect(pano, heading, rotation, fov=fov, size=size, pitch=pitch)
    pixels = [(0, 0), (16, 16), (32, 5), (7, 30), (32, 32), (20, 11)]
    expected = _literal_sample_points(size, fov, heading, rotation, pitch, width, height, pixels)
    for (u, v), (x, y) in zip(pixels, expected, strict=True):
        gap = abs(view[v, u, 0] - x)
        assert min(gap, abs(gap - (width - 1))) < 1e-3  # columns 0 and W − 1 both show the seam
        assert view[v, u, 1] == pytest.approx(y, abs=1e-3)


@pytest.mark.parametrize(
    ("heading", "rotation"), [(10.0, 0.0), (100.0, 37.0), (200.0, -80.0), (300.0, 359.0)]
)
def test_column_heading_inverts_the_view_centre(heading, rotation):
    width = 361
    pano = np.repeat(np.arange(width, dtype=np.float64)[None, :], 19, axis=0)
    centre = perspective_from_equirect(pano, heading, rotation, size=65)[32, 32]
    assert equirect_column_heading(centre, width, rotation) == pytest.approx(heading, abs=1e-6)


def test_positive_pitch_looks_up_and_row_zero_is_the_zenith():
    height = 181
    pano = np.repeat(equirect_row_elevation(np.arange(height, dtype=np.float64), height)[:, None], 40, axis=1)
    assert equirect_row_elevation(0, height) == 90.0 and equirect_row_elevation(height - 1, height) == -90.0
    for pitch in (-30.0, 0.0, 30.0):
        centre = perspective_from_equirect(pano, 77.0, pitch=pitch, size=65)[32, 32]
        assert centre == pytest.approx(pitch, abs=1e-6)
    view = perspective_from_equirect(pano, 77.0, size=65)
    assert view[0, 32] > 40 and view[64, 32] < -40  # the top row of a view looks up


def test_rotate_equirect_whole_column_shift_is_exact():
    pano = hue_pano()
    assert np.array_equal(rotate_equirect(pano, 0.0), pano)
    step = 360.0 / (WIDTH - 1)
    shifted = rotate_equirect(pano, 5 * step)
    # Column X stored with rotation r shows what column X − r/360·(W − 1) showed unrotated.
    assert np.array_equal(shifted[:, 10:], pano[:, 5:-5])
    assert equirect_column_heading(10, WIDTH, 5 * step) == pytest.approx(equirect_column_heading(5, WIDTH))


# --------------------------------------------------------------------------------------------- errors


def test_missing_route_infos_names_the_file(tmp_path: Path):
    with pytest.raises(DataError, match="route_infos.json: file not found") as caught:
        load_routes(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_malformed_json_and_wrong_shapes(tmp_path: Path):
    (tmp_path / "route_infos.json").write_text("[[{]", encoding="utf-8")
    with pytest.raises(DataError, match="not readable JSON"):
        load_routes(tmp_path)
    for content, message in (("routes", "not str"), ([[ROUTE], [ROUTE]], r"\[\[route, \.\.\.\], N\]"),
                             ([[], 3], "holds no routes"), ([ROUTE, 3], "route 1 must be a dict")):
        with pytest.raises(DataError, match=message):
            load_routes(write_routes(tmp_path, content))


def _without(path: str) -> dict:
    route = copy.deepcopy(ROUTE)
    *parents, last = path.split(".")
    node = route
    for part in parents:
        node = node[part]
    del node[last]
    return route


@pytest.mark.parametrize(
    "field",
    [
        "start_place",
        "start_place.relocated_geocode",
        "dest_place",
        "route_results",
        "route_results.geocode_list",
        "route_results.landmark_list",
        "init_heading",
        "milestone_info",
    ],
)
def test_a_record_missing_a_field_is_named(tmp_path: Path, field: str):
    write_routes(tmp_path, [[ROUTE, ROUTE, _without(field)], 3])
    with pytest.raises(DataError) as caught:
        load_routes(tmp_path)
    message = str(caught.value)
    assert f"route_infos.json: route 2 has no '{field}'" in message and str(tmp_path) in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(milestone_info="{ not a block"), "route 0: malformed 'milestone_info': line 1"),
        (lambda r: r.update(milestone_info=ROUTE["milestone_info"].split("\n\n{")[0] + "\n"),
         "'milestone_info' has 1 blocks but 'route_results.geocode_list' has 3 points"),
        (lambda r: r["route_results"]["geocode_list"].__setitem__(1, [95.0, 0.0]),
         r"geocode_list'\[1\] is not"),
        (lambda r: r["route_results"].update(geocode_list=[]), "must be a non-empty list"),
        (lambda r: r["start_place"].update(relocated_geocode=[40.7, "x"]), "relocated_geocode' is not"),
        (lambda r: r.update(dest_place=None), "'dest_place' must be a dict"),
        (lambda r: r.update(init_heading=float("nan")), "'init_heading' must be a finite number"),
    ],
)
def test_malformed_records_are_named(tmp_path: Path, change, message):
    route = copy.deepcopy(ROUTE)
    change(route)
    with pytest.raises(DataError, match=message):
        load_routes(write_routes(tmp_path, [route]))


def test_missing_pickle_is_named_and_only_the_given_directory_is_read(tmp_path: Path, dataset: Path,
                                                                      monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "gps_pano_mapping.pkl").write_bytes(pickle.dumps({(1.0, 2.0): "decoy"}))
    monkeypatch.chdir(elsewhere)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="gps_pano_mapping.pkl: file not found") as caught:
        PanoramaStore(empty)
    assert str(empty) in str(caught.value)

    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    store = PanoramaStore(dataset)
    assert opened == [dataset / "gps_pano_mapping.pkl"]
    assert "decoy" not in store.mapping.values()


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda tmp: pickle.dumps([((40.0, -73.0), "a")]), "expected a dict"),
        (lambda tmp: pickle.dumps({}), "maps no panoramas"),
        (lambda tmp: pickle.dumps({(40.0, "x"): "a"}), r"key \(40.0, 'x'\) is not a \(lat, lng\) pair"),
        (lambda tmp: pickle.dumps({(40.0, -200.0): "a"}), "is not a .lat, lng. pair in range"),
        (lambda tmp: pickle.dumps({(40.0, -73.0): 17}), "maps to 17, which is not a pano id"),
        (lambda tmp: pickle.dumps({(40.0, -73.0): "../../etc/passwd"}), "which is not a pano id"),
        (lambda tmp: b"not a pickle at all", "not a readable pickle"),
        (lambda tmp: pickle.dumps({(40.0, -73.0): _Exploit(tmp / "pwned")}), "refusing to load global"),
    ],
)
def test_bad_pickles_raise_data_error(tmp_path: Path, content, message):
    (tmp_path / "gps_pano_mapping.pkl").write_bytes(content(tmp_path))
    with pytest.raises(DataError, match=message) as caught:
        PanoramaStore(tmp_path)
    assert str(tmp_path / "gps_pano_mapping.pkl") in str(caught.value)
    assert not (tmp_path / "pwned").exists()


def test_missing_jpg_and_metadata_are_named(dataset: Path):
    views = dataset / "street_views"
    (views / "pano_1.jpg").unlink()
    (views / "pano_2.metadata.json").unlink()
    (views / "pano_3.metadata.json").write_text(json.dumps({"heading": 3}))
    store = PanoramaStore(dataset)
    with pytest.raises(DataError, match="panorama not found") as caught:
        store.views("pano_1", [0.0])
    assert str(views / "pano_1.jpg") in str(caught.value)
    with pytest.raises(DataError, match="metadata file not found") as caught:
        store.views(POINTS[2], [0.0])
    assert str(views / "pano_2.metadata.json") in str(caught.value)
    with pytest.raises(DataError, match="has no 'rotation'"):
        store.panorama("pano_3")
    (views / "pano_0.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="pano_0.jpg: not a readable image"):
        store.panorama("pano_0")


def test_lookups_that_cannot_be_served(dataset: Path):
    store = PanoramaStore(dataset)
    with pytest.raises(DataError, match="no panorama within 20 m"):
        store.views((0.0, 0.0), [0.0])
    with pytest.raises(DataError, match="is not a pano id"):
        store.views("../route_infos", [0.0])
    with pytest.raises(ValueError, match="not a .lat, lng. pair"):
        store.relocate((91.0, 0.0))


def test_validate_dataset_names_every_problem(tmp_path: Path):
    root = make_dataset(tmp_path)
    views = root / "street_views"
    for pano_id in ("pano_0", "pano_2", "pano_3"):
        (views / f"{pano_id}.jpg").unlink()
    (views / "pano_1.metadata.json").write_text("{}")
    broken = _without("milestone_info")
    broken["route_results"]["geocode_list"][0] = [10.0, 10.0]
    routes = json.loads((root / "route_infos.json").read_text())
    (root / "route_infos.json").write_text(json.dumps([[routes[0][0], broken], 2]))
    with pytest.raises(DataError) as caught:
        validate_dataset(root, max_listed=2)
    problems = caught.value.problems
    text = str(caught.value)
    assert "route 1 has no 'milestone_info'" in text
    assert "3 panoramas missing" in text and "pano_0.jpg, pano_2.jpg and 1 more" in text
    assert "pano_1.metadata.json: has no 'rotation'" in text
    assert len(problems) == 3  # a record with faults is not checked for coverage until it parses

    repaired = broken | {"milestone_info": ROUTE["milestone_info"]}
    (root / "route_infos.json").write_text(json.dumps([[ROUTE, repaired], 2]))
    with pytest.raises(DataError, match=r"route 1 geocode_list\[0\] \(10.0, 10.0\)"):
        validate_dataset(root)
    with pytest.raises(DataError, match="not a directory"):
        validate_dataset(root / "nope")


def test_export_rejects_bad_input(tmp_path: Path):
    with pytest.raises(DataError, match="route 0 has no 'milestone_info'"):
        export_dataset([_without("milestone_info")], PANOS, tmp_path, sector_pano)
    with pytest.raises(ValueError, match="mapped to both"):
        export_dataset([ROUTE], PANOS + [(POINTS[0], "other")], tmp_path, sector_pano)
    with pytest.raises(ValueError, match="uint8"):
        export_dataset([ROUTE], PANOS, tmp_path, lambda g: np.zeros((8, 16, 3)))
    assert not (tmp_path / "route_infos.json").exists()


def test_the_module_has_no_network_code():
    source = Path(data.__file__).read_text() + Path(panorama.__file__).read_text()
    for word in ("requests", "urllib", "http", "socket"):
        assert word not in source


def test_exported_jpeg_is_the_panorama(dataset: Path):
    with Image.open(dataset / "street_views" / "pano_0.jpg") as image:
        assert image.size == (WIDTH, HEIGHT) and image.mode == "RGB"
