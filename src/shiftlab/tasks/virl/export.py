"""Write procedural routes in the released on-disk layout, so the real-data path can be exercised end
to end without the dataset (and so users can hand procedural cities to other V-IRL tools)."""

from __future__ import annotations

import math
from pathlib import Path

from shiftlab.tasks.virl.data import export_dataset
from shiftlab.tasks.virl.geo import LatLng, haversine, interpolate, to_xy
from shiftlab.tasks.virl.render import render_panorama
from shiftlab.tasks.virl.routes import route_record
from shiftlab.tasks.virl.sources import DISTRICTS, MAPPING_RADIUS_M
from shiftlab.tasks.virl.world import build_world

_SAMPLE_STEP_M = 4.0
MAX_ROUTES = 10_000
MIN_PANO_WIDTH, MAX_PANO_WIDTH = 64, 8192  # 8192 x 4096 is the largest street-view panorama in common use


def _path_points(record: dict) -> list[LatLng]:
    start = tuple(record["start_place"]["relocated_geocode"])
    milestones = [tuple(p) for p in record["route_results"]["geocode_list"]]
    points = [start]
    for a, b in zip([start, *milestones], milestones, strict=False):
        steps = max(1, int(haversine(a, b) / _SAMPLE_STEP_M))
        points += [interpolate(a, b, i / steps) for i in range(1, steps + 1)]
    return points


def export_procedural(
    out_dir: str | Path,
    city: str = "new_york",
    split: str = "test",
    routes: int = 10,
    lengths: str = "train",
    pano_width: int = 1024,
    rotation: float = 0.0,
) -> Path:
    """Export the first `routes` routes of a procedural district with a panorama at every street-view
    position a rail can snap to (every ~4 m along each route, within the 20 m mapping radius)."""
    if split not in DISTRICTS:
        raise ValueError(f"split must be one of {tuple(DISTRICTS)}, not {split!r}")
    if type(routes) is not int or not 1 <= routes <= MAX_ROUTES:
        raise ValueError(f"routes must be from 1 to {MAX_ROUTES}, not {routes!r}")
    if type(pano_width) is not int or not MIN_PANO_WIDTH <= pano_width <= MAX_PANO_WIDTH or pano_width % 2:
        raise ValueError(f"pano width must be an even number of pixels from {MIN_PANO_WIDTH} to {MAX_PANO_WIDTH}, "
                         f"not {pano_width!r}")
    if not math.isfinite(rotation):
        raise ValueError(f"rotation must be a finite number of degrees, not {rotation!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} exists and is not a directory")
    world = build_world(city, DISTRICTS[split])
    records = [route_record(world, i, lengths) for i in range(routes)]
    panos: dict[str, LatLng] = {}
    for record in records:
        for point in _path_points(record):
            hit = world.nearest_pano(point, MAPPING_RADIUS_M)
            if hit is not None:
                panos.setdefault(hit[1], hit[0])

    def render(geocode: LatLng):
        x, y = to_xy(world.anchor, geocode)
        return render_panorama(world.scene, x, y, width=pano_width, height=pano_width // 2)

    export_dataset(records, [(geocode, pano_id) for pano_id, geocode in panos.items()], out, render, rotation=rotation)
    return out
