"""Where routes and street views come from: procedural cities (the default) or the released data.

Both give route records in the released schema, snap points to street-view positions, and cut the
four views at a position, so the environment cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from shiftlab.tasks.virl.data import PanoramaStore, load_routes
from shiftlab.tasks.virl.geo import LatLng, to_xy
from shiftlab.tasks.virl.render import render_grid
from shiftlab.tasks.virl.routes import route_record
from shiftlab.tasks.virl.scene import assemble_grid, view_headings
from shiftlab.tasks.virl.world import CITIES, build_world

SPLITS = ("train", "test", "ood")
# Disjoint districts of every city: training routes, held-out in-distribution evaluation, and the
# districts used by out-of-distribution sets (so the OOD New York routes are new streets too).
DISTRICTS = {"train": 0, "test": 1, "ood": 2}
ROUTE_LENGTHS = ("train", "mini")
MAPPING_RADIUS_M = 20.0


class RouteSource:
    """A fixed, ordered list of routes, with street views."""

    def __len__(self) -> int:
        raise NotImplementedError

    def record(self, index: int) -> dict:
        raise NotImplementedError

    def city(self, index: int) -> str:
        raise NotImplementedError

    def relocate(self, index: int, point: LatLng) -> LatLng | None:
        raise NotImplementedError

    def grid(self, index: int, point: LatLng, heading: float, size: int, layout: str) -> np.ndarray:
        raise NotImplementedError


@lru_cache(maxsize=4096)
def _procedural_record(city: str, district: int, index: int, lengths: str) -> dict:
    return route_record(build_world(city, district), index, lengths)


class ProceduralSource(RouteSource):
    """Routes of procedural cities: `routes_per_city` routes of each city, city after city."""

    def __init__(self, cities: Sequence[str], split: str, routes_per_city: int, lengths: str):
        unknown = [c for c in cities if c not in CITIES]
        if unknown:
            raise ValueError(f"unknown city {unknown[0]!r}; known cities: {', '.join(CITIES)}")
        if split not in DISTRICTS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if lengths not in ROUTE_LENGTHS:
            raise ValueError(f"route_lengths must be one of {ROUTE_LENGTHS}, not {lengths!r}")
        if routes_per_city < 1:
            raise ValueError(f"routes_per_city must be positive, not {routes_per_city!r}")
        self.cities = tuple(cities)
        self.district = DISTRICTS[split]
        self.routes_per_city = routes_per_city
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.cities) * self.routes_per_city

    def _locate(self, index: int) -> tuple[str, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"route index {index} out of range 0..{len(self) - 1}")
        return self.cities[index // self.routes_per_city], index % self.routes_per_city

    def _world(self, index: int):
        return build_world(self._locate(index)[0], self.district)

    def record(self, index: int) -> dict:
        city, i = self._locate(index)
        return _procedural_record(city, self.district, i, self.lengths)

    def city(self, index: int) -> str:
        return self._locate(index)[0]

    def relocate(self, index: int, point: LatLng) -> LatLng | None:
        hit = self._world(index).nearest_pano(point, MAPPING_RADIUS_M)
        return None if hit is None else hit[0]

    def grid(self, index: int, point: LatLng, heading: float, size: int, layout: str) -> np.ndarray:
        world = self._world(index)
        x, y = to_xy(world.anchor, point)
        return render_grid(world.scene, x, y, heading, size=size, layout=layout)


class ReleasedSource(RouteSource):
    """Routes and panoramas of a released directory (route_infos.json, gps_pano_mapping.pkl, street_views/).

    Panoramas are read only when a view is asked for, so text tasks need the mapping file alone.
    """

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.routes = load_routes(self.data_dir)
        self.store = PanoramaStore(self.data_dir, mapping_radius_m=MAPPING_RADIUS_M)

    def __len__(self) -> int:
        return len(self.routes)

    def record(self, index: int) -> dict:
        return self.routes[index]

    def city(self, index: int) -> str:
        """The city part of the destination's region ("Westhaven_NYC_North_America" -> "nyc")."""
        parts = str((self.routes[index].get("dest_place") or {}).get("region") or "").split("_")
        return parts[1].lower() if len(parts) > 1 else self.data_dir.name

    def relocate(self, index: int, point: LatLng) -> LatLng | None:
        hit = self.store.relocate(point)
        return None if hit is None else hit[0]

    def grid(self, index: int, point: LatLng, heading: float, size: int, layout: str) -> np.ndarray:
        return assemble_grid(self.store.views(point, view_headings(heading, layout), size=size))
