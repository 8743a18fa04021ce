"""Released V-IRL route sets on disk: route records, the GPS → panorama map, panoramas and their views.

A route set is a directory laid out as the SFTvsRL release (`nyc_1k_routes/`, `VLN_mini/`; virl.md §2.1):

    route_infos.json                      [[route, ...], N], a bare list of routes, or one route dict
    gps_pano_mapping.pkl                  pickle: {(lat, lng): pano_id}
    street_views/<pano_id>.jpg            equirectangular panorama
    street_views/<pano_id>.metadata.json  {"rotation": degrees, ...}

Everything is read from that directory and nowhere else; there is no network code at all, so a
missing panorama is an error (DataError), never a silent online fallback as in the original (Q8).
`export_dataset` writes the same layout from procedural worlds, so the loader can be tested on
format-exact fixtures without the real data.
"""

from __future__ import annotations

import json
import math
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shiftlab.errors import InputError
from shiftlab.tasks.virl.caching import LRU
from shiftlab.tasks.virl.geo import EARTH_RADIUS_M, haversine
from shiftlab.tasks.virl.milestones import MilestoneFormatError, parse_milestone_info
from shiftlab.tasks.virl.panorama import perspective_from_equirect, rotate_equirect

try:
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _numpy_scalar

ROUTES_FILE = "route_infos.json"
MAPPING_FILE = "gps_pano_mapping.pkl"
VIEWS_DIR = "street_views"

LatLng = tuple[float, float]


class DataError(InputError):
    """A route set missing a file or holding malformed content; the message names the file and the fault.

    `problems` lists every fault found (validate_dataset finds them all; loaders stop at the first).
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


def _number(value: object) -> bool:
    real = isinstance(value, (int, float, np.integer, np.floating))
    return real and not isinstance(value, (bool, np.bool_))


def _latlng(value: object) -> LatLng | None:
    """(lat, lng) as floats when `value` is a finite, in-range pair, else None."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_number(v) for v in value):
        return None
    lat, lng = float(value[0]), float(value[1])
    if not (math.isfinite(lat) and math.isfinite(lng) and -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        return None
    return lat, lng


def _dict_field(record: dict, key: str, where: str, problems: list[str]) -> dict | None:
    if key not in record:
        problems.append(f"{where} has no {key!r}")
        return None
    if not isinstance(record[key], dict):
        problems.append(f"{where}: {key!r} must be a dict, not {type(record[key]).__name__}")
        return None
    return record[key]


def _route_problems(route: object, index: int) -> list[str]:
    """Every fault in one record among the fields the environment reads (virl.md §2.2)."""
    where = f"route {index}"
    if not isinstance(route, dict):
        return [f"{where} must be a dict, not {type(route).__name__}"]
    problems: list[str] = []
    start = _dict_field(route, "start_place", where, problems)
    if start is not None:
        if "relocated_geocode" not in start:
            problems.append(f"{where} has no 'start_place.relocated_geocode'")
        elif _latlng(start["relocated_geocode"]) is None:
            problems.append(f"{where}: 'start_place.relocated_geocode' is not a [lat, lng] pair in range: "
                            f"{start['relocated_geocode']!r}")
    _dict_field(route, "dest_place", where, problems)
    n_points = None
    results = _dict_field(route, "route_results", where, problems)
    if results is not None:
        geocodes = results.get("geocode_list")
        if "geocode_list" not in results:
            problems.append(f"{where} has no 'route_results.geocode_list'")
        elif not isinstance(geocodes, list) or not geocodes:
            problems.append(f"{where}: 'route_results.geocode_list' must be a non-empty list of [lat, lng]")
        else:
            problems += [f"{where}: 'route_results.geocode_list'[{j}] is not a [lat, lng] pair in range: "
                         f"{point!r}" for j, point in enumerate(geocodes) if _latlng(point) is None]
            n_points = len(geocodes)
        if "landmark_list" not in results:
            problems.append(f"{where} has no 'route_results.landmark_list'")
        elif not isinstance(results["landmark_list"], list):
            problems.append(f"{where}: 'route_results.landmark_list' must be a list")
    if "init_heading" not in route:
        problems.append(f"{where} has no 'init_heading'")
    elif not _number(route["init_heading"]) or not math.isfinite(route["init_heading"]):
        problems.append(f"{where}: 'init_heading' must be a finite number, not {route['init_heading']!r}")
    if "milestone_info" not in route:
        problems.append(f"{where} has no 'milestone_info'")
    else:
        try:
            blocks = len(parse_milestone_info(route["milestone_info"]))
        except MilestoneFormatError as error:
            problems.append(f"{where}: malformed 'milestone_info': {error}")
        else:
            if n_points is not None and blocks != n_points:
                problems.append(f"{where}: 'milestone_info' has {blocks} blocks but "
                                f"'route_results.geocode_list' has {n_points} points")
    return problems


def _route_list(data: object, path: Path) -> list:
    """The routes of any accepted shape; N in [routes, N] is the collector's dest_idx, never a count (Q5)."""
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected [[route, ...], N], a list of routes or one route dict, "
                        f"not {type(data).__name__}")
    if data and isinstance(data[0], list):
        if len(data) != 2 or not _number(data[1]):
            raise DataError(f"{path}: a list whose first element is a list must be [[route, ...], N]")
        return data[0]
    return data


def _summary(path: Path | str, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more; validate_dataset lists them all)" if len(problems) > 1 else ""
    return f"{path}: {problems[0]}{more}"


def _read_routes(path: Path) -> tuple[list, list[str]]:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not the routes file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DataError(f"{path}: not readable JSON: {error}") from None
    routes = _route_list(data, path)
    if not routes:
        raise DataError(f"{path}: holds no routes")
    problems = [p for i, route in enumerate(routes) for p in _route_problems(route, i)]
    return routes, problems


def load_routes(data_dir: str | Path) -> list[dict]:
    """The route records of `data_dir`/route_infos.json, checked field by field (routes numbered from 0).

    Records come back as stored, so fields the environment ignores keep their schema for V-IRL tools.
    """
    path = Path(data_dir) / ROUTES_FILE
    routes, problems = _read_routes(path)
    if problems:
        raise DataError(_summary(path, problems), [f"{path}: {p}" for p in problems])
    return routes


_PICKLE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _MappingUnpickler(pickle.Unpickler):
    """Resolves only the globals a dict of floats and strings can need (numpy scalars included).

    A hostile pickle therefore cannot run code through this loader, but the real safeguard remains that
    we only open the pickle inside the directory the user handed us.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "scalar":
            return _numpy_scalar
        return OrderedDict if name == "OrderedDict" else np.dtype


def _safe_pano_id(pano_id: str) -> bool:
    """A pano id must name a file inside street_views/, never a path out of it."""
    return bool(pano_id) and pano_id not in (".", "..") and not any(c in pano_id for c in "/\\\0")


def _read_mapping(path: Path) -> tuple[dict[LatLng, str], list[str]]:
    """The GPS → pano id map with keys as (float, float) and values as str, and the entries that are not."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with path.open("rb") as handle:
            raw = _MappingUnpickler(handle).load()
    except Exception as error:  # any failure to unpickle means the same to the user: not a mapping file
        raise DataError(f"{path}: not a readable pickle: {error}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict {{(lat, lng): pano_id}}, got {type(raw).__name__}")
    if not raw:
        raise DataError(f"{path}: maps no panoramas")
    mapping: dict[LatLng, str] = {}
    problems = []
    for key, value in raw.items():
        point = _latlng(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if point is None:
            problems.append(f"key {key!r} is not a (lat, lng) pair in range")
        elif not isinstance(value, str) or not _safe_pano_id(str(value)):
            problems.append(f"key {key!r} maps to {value!r}, which is not a pano id (a plain file name)")
        else:
            mapping[point] = str(value)
    return mapping, problems


def _read_rotation(path: Path) -> float:
    """The metadata's rotation; a missing file or key is an error rather than 0, since a wrong guess would
    silently turn every view of that panorama."""
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DataError(f"{path}: not readable JSON: {error}") from None
    if not isinstance(meta, dict) or "rotation" not in meta:
        raise DataError(f"{path}: has no 'rotation'")
    rotation = meta["rotation"]
    if not _number(rotation) or not math.isfinite(rotation):
        raise DataError(f"{path}: 'rotation' must be a finite number of degrees, not {rotation!r}")
    return float(rotation)


def _read_panorama(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: panorama not found")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: not a readable image: {error}") from None


def _panorama_problem(path: Path) -> str | None:
    """Why the panorama at `path` cannot be used (None when it decodes, or is missing: that is listed
    apart). Decoded at reduced scale: a fault anywhere in the data still fails the decode."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return f"{path.name}: {' '.join(str(error).split())[:120] or type(error).__name__}"
    if width < 8 or height < 4:
        return f"{path.name}: {width}x{height} pixels is too small for a panorama"
    return None


_NEIGHBOURS = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]


class _NearestPano:
    """Nearest mapped point within a radius: a grid hash on Earth-centred metres, cells one radius wide.

    Within the radius the straight-line distance is at most the great-circle one, so a match can only lie
    in the 27 cells around the query's: O(1) per query, with no seam at the antimeridian, no distortion
    near the poles and no single local anchor (VLN_mini spans nine cities). The original searched all
    keys per call (Q9).
    """

    def __init__(self, points: Iterable[LatLng], radius_m: float) -> None:
        self.radius_m = radius_m
        self._grid: dict[tuple[int, int, int], list[LatLng]] = {}
        for point in points:
            self._grid.setdefault(self._cell(point), []).append(point)

    def _cell(self, point: LatLng) -> tuple[int, int, int]:
        lat, lng = math.radians(point[0]), math.radians(point[1])
        scale = EARTH_RADIUS_M / self.radius_m
        return (
            math.floor(math.cos(lat) * math.cos(lng) * scale),
            math.floor(math.cos(lat) * math.sin(lng) * scale),
            math.floor(math.sin(lat) * scale),
        )

    def nearest(self, point: LatLng) -> LatLng | None:
        cx, cy, cz = self._cell(point)
        best: tuple[float, LatLng] | None = None
        for dx, dy, dz in _NEIGHBOURS:
            for candidate in self._grid.get((cx + dx, cy + dy, cz + dz), ()):
                distance = haversine(point, candidate)
                if distance <= self.radius_m and (best is None or (distance, candidate) < best):
                    best = (distance, candidate)
        return None if best is None else best[1]


class PanoramaStore:
    """Panoramas of one route set: nearest-pano lookup and perspective views, all from local files.

    Trust assumption: `gps_pano_mapping.pkl` is read with pickle because that is the released format.
    Pickle can execute code, so the store only ever opens `<data_dir>/gps_pano_mapping.pkl` of a directory
    the user chose, and its unpickler refuses every global beyond what a dict of numbers and strings needs.

    Panoramas (about 6 MB decoded each) and views are cached separately: `cache_size` views and
    `pano_cache_size` panoramas. Returned views are shared with the cache and therefore read-only.
    """

    def __init__(
        self,
        data_dir: str | Path,
        mapping_radius_m: float = 20.0,
        cache_size: int = 256,
        pano_cache_size: int = 8,
    ) -> None:
        if not mapping_radius_m > 0:
            raise ValueError(f"mapping_radius_m must be positive, not {mapping_radius_m!r}")
        self.data_dir = Path(data_dir)
        self.mapping_radius_m = float(mapping_radius_m)
        path = self.data_dir / MAPPING_FILE
        self._mapping, problems = _read_mapping(path)
        if problems:
            raise DataError(_summary(path, problems), [f"{path}: {p}" for p in problems])
        self._index = _NearestPano(self._mapping, self.mapping_radius_m)
        self._views = LRU(cache_size)
        self._panos = LRU(pano_cache_size)

    def __len__(self) -> int:
        return len(self._mapping)

    @property
    def mapping(self) -> dict[LatLng, str]:
        """A copy of the normalised {(lat, lng): pano_id} map."""
        return dict(self._mapping)

    def relocate(self, latlng: Sequence[float]) -> tuple[LatLng, str] | None:
        """The nearest mapped (lat, lng) within mapping_radius_m (haversine, inclusive) and its pano id,
        or None."""
        point = _latlng(latlng)
        if point is None:
            raise ValueError(f"not a (lat, lng) pair in range: {latlng!r}")
        if point not in self._mapping:
            point = self._index.nearest(point)
        return None if point is None else (point, self._mapping[point])

    def _pano_id(self, latlng_or_pano_id: str | Sequence[float]) -> str:
        if isinstance(latlng_or_pano_id, str):
            if not _safe_pano_id(latlng_or_pano_id):
                raise DataError(f"{self.data_dir}: {latlng_or_pano_id!r} is not a pano id "
                                "(a plain file name)")
            return latlng_or_pano_id
        hit = self.relocate(latlng_or_pano_id)
        if hit is None:
            raise DataError(f"{self.data_dir}: no panorama within {self.mapping_radius_m:g} m of "
                            f"{tuple(latlng_or_pano_id)}")
        return hit[1]

    def panorama(self, latlng_or_pano_id: str | Sequence[float]) -> tuple[np.ndarray, float]:
        """The decoded panorama (H, W, 3 uint8, read-only) and its metadata rotation in degrees."""
        pano_id = self._pano_id(latlng_or_pano_id)
        cached = self._panos.get(pano_id)
        if cached is not None:
            return cached
        folder = self.data_dir / VIEWS_DIR
        pano = _read_panorama(folder / f"{pano_id}.jpg")
        rotation = _read_rotation(folder / f"{pano_id}.metadata.json")
        pano.flags.writeable = False
        self._panos.put(pano_id, (pano, rotation))
        return pano, rotation

    def views(
        self,
        latlng_or_pano_id: str | Sequence[float],
        headings: Iterable[float],
        size: int = 256,
        fov: float = 90.0,
    ) -> list[np.ndarray]:
        """size×size RGB views (uint8, read-only) at each compass heading, from a pano id or the pano
        nearest a (lat, lng); a (lat, lng) with no pano within the radius raises DataError."""
        pano_id = self._pano_id(latlng_or_pano_id)
        out = []
        for heading in headings:
            key = (pano_id, float(heading) % 360.0, int(size), float(fov))
            view = self._views.get(key)
            if view is None:
                pano, rotation = self.panorama(pano_id)
                view = perspective_from_equirect(pano, float(heading), rotation, fov=fov, size=size)
                view.flags.writeable = False
                self._views.put(key, view)
            out.append(view)
        return out

    def clear_caches(self) -> None:
        self._views.clear()
        self._panos.clear()


def _listed(problems: list[str], label: str, items: list[str], max_listed: int) -> None:
    if not items:
        return
    shown = ", ".join(items[:max_listed])
    more = f" and {len(items) - max_listed} more" if len(items) > max_listed else ""
    problems.append(f"{len(items)} {label}: {shown}{more}")


def validate_dataset(data_dir: str | Path, *, mapping_radius_m: float = 20.0, max_listed: int = 20) -> None:
    """Check a whole route set and raise one DataError naming every problem (None when all is well).

    Beyond what the loaders check lazily, it looks for every panorama's jpg and metadata and for a
    panorama within `mapping_radius_m` of every route point the rail snaps (start and milestones).
    Every panorama is decoded, at an eighth of its size where the format allows (JPEG's draft mode),
    so a garbage or truncated file is found in milliseconds rather than when a route first needs it.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    problems: list[str] = []
    routes: list = []
    try:
        routes, route_problems = _read_routes(root / ROUTES_FILE)
        problems += [f"{root / ROUTES_FILE}: {p}" for p in route_problems]
    except DataError as error:
        problems += error.problems

    mapping: dict[LatLng, str] = {}
    try:
        mapping, mapping_problems = _read_mapping(root / MAPPING_FILE)
        _listed(problems, f"bad entries in {root / MAPPING_FILE}", mapping_problems, max_listed)
    except DataError as error:
        problems += error.problems

    folder = root / VIEWS_DIR
    if mapping and not folder.is_dir():
        problems.append(f"{folder}: directory not found")
    elif mapping:
        pano_ids = sorted(set(mapping.values()))
        missing_jpg = [f"{i}.jpg" for i in pano_ids if not (folder / f"{i}.jpg").is_file()]
        missing_meta = [f"{i}.metadata.json" for i in pano_ids
                        if not (folder / f"{i}.metadata.json").is_file()]
        _listed(problems, f"panoramas missing in {folder}", missing_jpg, max_listed)
        _listed(problems, f"metadata files missing in {folder}", missing_meta, max_listed)
        bad_meta = []
        for pano_id in pano_ids:
            if (folder / f"{pano_id}.metadata.json").is_file():
                try:
                    _read_rotation(folder / f"{pano_id}.metadata.json")
                except DataError as error:
                    bad_meta.append(str(error))
        _listed(problems, "malformed metadata files", bad_meta, max_listed)
        unreadable = [str(error) for error in map(_panorama_problem, (folder / f"{i}.jpg" for i in pano_ids))
                      if error is not None]
        _listed(problems, "unreadable panoramas", unreadable, max_listed)

    if routes and mapping:
        index = _NearestPano(mapping, mapping_radius_m)
        uncovered = []
        for i, route in enumerate(routes):
            if _route_problems(route, i):
                continue
            points = [("start_place.relocated_geocode", route["start_place"]["relocated_geocode"])]
            milestones = route["route_results"]["geocode_list"]
            points += [(f"geocode_list[{j}]", p) for j, p in enumerate(milestones)]
            uncovered += [f"route {i} {name} {tuple(p)}" for name, p in points
                          if index.nearest(_latlng(p)) is None]
        label = f"route points with no panorama within {mapping_radius_m:g} m"
        _listed(problems, label, uncovered, max_listed)

    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise DataError(f"{root}: {len(problems)} problem(s):\n{listing}", problems)


def export_dataset(
    routes: list[dict],
    panos: list[tuple[tuple[float, float], str]],
    out_dir: str | Path,
    render_panorama: Callable[[tuple[float, float]], np.ndarray],
    rotation: Callable[[str], float] | float = 0.0,
    jpeg_quality: int = 92,
) -> None:
    """Write routes and panoramas in the released layout, so procedural worlds double as real-data fixtures.

    `render_panorama(geocode)` must return an (H, W, 3) uint8 panorama drawn at rotation 0 (panorama.py
    conventions); each is stored rotated by `rotation` (a constant, or a function of the pano id) with
    that rotation in its metadata, as real panoramas are. route_infos.json is written last, so an
    interrupted export is visibly incomplete.
    """
    root = Path(out_dir)
    problems = [p for i, route in enumerate(routes) for p in _route_problems(route, i)]
    if problems:
        raise DataError(_summary("routes", problems), problems)
    mapping: dict[LatLng, str] = {}
    first_point: dict[str, LatLng] = {}
    for geocode, pano_id in panos:
        point = _latlng(geocode)
        if point is None:
            raise ValueError(f"pano {pano_id!r}: {geocode!r} is not a (lat, lng) pair in range")
        if not isinstance(pano_id, str) or not _safe_pano_id(pano_id):
            raise ValueError(f"{pano_id!r} is not a pano id (a plain file name)")
        if mapping.get(point, pano_id) != pano_id:
            raise ValueError(f"{point} is mapped to both {mapping[point]!r} and {pano_id!r}")
        mapping[point] = pano_id
        first_point.setdefault(pano_id, point)

    folder = root / VIEWS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for pano_id, point in first_point.items():
        rendered = render_panorama(point)
        if not isinstance(rendered, np.ndarray) or rendered.dtype != np.uint8 or rendered.ndim != 3 \
                or rendered.shape[2] != 3:
            raise ValueError(f"render_panorama{point} must return an (H, W, 3) uint8 array")
        r = float(rotation(pano_id) if callable(rotation) else rotation)
        if not math.isfinite(r):
            raise ValueError(f"rotation of {pano_id!r} must be finite, not {r!r}")
        stored = rotate_equirect(rendered, r) if r % 360.0 else rendered
        Image.fromarray(stored).save(folder / f"{pano_id}.jpg", "JPEG", quality=jpeg_quality)
        (folder / f"{pano_id}.metadata.json").write_text(json.dumps({"rotation": r}), encoding="utf-8")
    with (root / MAPPING_FILE).open("wb") as handle:
        pickle.dump(mapping, handle, protocol=4)
    text = json.dumps([list(routes), len(routes)], ensure_ascii=False, indent=None, allow_nan=False)
    (root / ROUTES_FILE).write_text(text, encoding="utf-8")
