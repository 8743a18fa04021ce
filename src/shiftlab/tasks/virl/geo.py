"""Geodesy for V-IRL routes: distances, bearings, compass and relative direction words.

Every text-facing quantity is computed from emitted (lat, lng) pairs with the original's spherical
formulas (haversine distance, initial great-circle bearing), so procedural and released routes are
numerically consistent. Procedural worlds live in local metres (x east, y north) around an anchor
and are converted once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_000.0

DIRECTIONS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
RELATIONS = ("front", "right front", "right", "right behind", "behind", "left behind", "left", "left front")

LatLng = tuple[float, float]


def haversine(a: Sequence[float], b: Sequence[float]) -> float:
    """Great-circle distance in metres between two (lat, lng) points."""
    lat1, lng1, lat2, lng2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing(a: Sequence[float], b: Sequence[float]) -> float:
    """Initial great-circle bearing from a to b, degrees clockwise from north in [0, 360)."""
    lat1, lng1, lat2, lng2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    dlng = lng2 - lng1
    x = math.sin(dlng) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlng)
    return math.degrees(math.atan2(x, y)) % 360.0


def _nearest_of_eight(angle: float) -> int:
    """Index of the nearest multiple of 45 degrees; a tie goes to the lower index, as the original."""
    angle %= 360.0
    best, best_gap = 0, 361.0
    for i in range(8):
        gap = abs(angle - 45 * i)
        gap = min(gap, 360.0 - gap)
        if gap < best_gap:
            best, best_gap = i, gap
    return best


def direction_word(heading: float) -> str:
    """Compass word for a heading: 22 -> north, 23 -> northeast."""
    return DIRECTIONS[_nearest_of_eight(heading)]


def relation_word(relative_bearing: float) -> str:
    """Where something is relative to the way one faces: 60 -> 'right front', 180 -> 'behind'."""
    return RELATIONS[_nearest_of_eight(relative_bearing)]


def to_latlng(anchor: LatLng, x: float, y: float) -> LatLng:
    """Local metres (x east, y north) around `anchor` to (lat, lng), rounded to 7 decimals as Google's are."""
    lat = anchor[0] + math.degrees(y / EARTH_RADIUS_M)
    lng = anchor[1] + math.degrees(x / (EARTH_RADIUS_M * math.cos(math.radians(anchor[0]))))
    return round(lat, 7), round(lng, 7)


def to_xy(anchor: LatLng, point: Sequence[float]) -> tuple[float, float]:
    """(lat, lng) to local metres around `anchor` (the inverse of to_latlng)."""
    y = math.radians(point[0] - anchor[0]) * EARTH_RADIUS_M
    x = math.radians(point[1] - anchor[1]) * EARTH_RADIUS_M * math.cos(math.radians(anchor[0]))
    return x, y


def interpolate(a: Sequence[float], b: Sequence[float], t: float) -> LatLng:
    """The point a fraction t of the way from a to b (linear in lat/lng, as the original; fine under 1 km)."""
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
