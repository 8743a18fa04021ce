"""Procedural cities for V-IRL navigation: streets, shop frontages with signs, and street-view positions.

A city is a `CityProfile` (anchor, street layout, look, name pack; the settings are data/cities.json);
a district is one seeded instance of it, built by `build_world(city, district)`:
1. a street graph from the city's layout (rotated grid, organic, or rings and spokes with organic fill),
   its edge chains named from the city's lexicon;
2. both sides of every street lined with building fronts, most ground floors holding a named business
   whose flat sign faces the street (the `Scene` the street-view renderer draws);
3. street-view positions ("panos") every ~10 m along every street and at every junction: the stand-in
   for the Google coverage that the original relocates every point onto.

Everything is a pure function of (WORLD_VERSION, city, district); each stage draws from its own
stream, so changing one stage does not reshuffle the others (virl.md §3.9).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from shiftlab.tasks.virl.geo import LatLng, haversine, to_latlng, to_xy
from shiftlab.tasks.virl.names import PACKS, Draws, NameMaker, NamePack
from shiftlab.tasks.virl.scene import RGB, CityStyle, Facade, Road, Scene, Sign
from shiftlab.tasks.virl.seeding import rng, stable_seed
from shiftlab.tasks.virl.spatial import SpatialHash
from shiftlab.tasks.virl.tables import read_table

FLOOR_HEIGHT_M = 3.2
PANO_SPACING_M = 10.0
SIGN_CHAR_WIDTH_M = 0.45
SIGN_MARGIN_M = 0.6
SIGN_HEIGHT_M = 0.9
SIGN_ELEVATION_M = 3.2
MIN_LOT_M = 4.0
DISTRICT_SPACING_M = (
    1600.0  # districts of a city sit this far apart (times sqrt(district)), never overlapping
)
_PANO_CELL_M = 20.0
_CLEAR_OF_ROADS_M = 1.0  # a facade keeps at least this much sidewalk to every road's kerb

# Google-style generic types that follow each of the 20 types, as in real Places results.
TYPE_TAILS: dict[str, tuple[str, ...]] = {
    "bank": ("finance",), "restaurant": ("food",), "supermarket": ("grocery_or_supermarket", "food", "store"),
    "bakery": ("food", "store"), "cafe": ("food",), "pharmacy": ("health", "store"), "hospital": ("health",),
    "spa": ("health",), "convenience_store": ("food", "store"), "school": (), "library": (),
    "park": ("tourist_attraction",), "lodging": (), "laundry": (), "movie_theater": (),
    "book_store": ("store",), "clothing_store": ("store",), "jewelry_store": ("store",), "gym": ("health",),
    "bar": (),
}  # fmt: skip
# How common each type is among ground-floor businesses (shops and food dominate real high streets).
TYPE_WEIGHTS: dict[str, float] = {
    "restaurant": 14, "cafe": 10, "bar": 8, "clothing_store": 8, "convenience_store": 7, "bakery": 5,
    "pharmacy": 5, "supermarket": 4, "bank": 4, "spa": 4, "laundry": 4, "lodging": 4, "jewelry_store": 3,
    "book_store": 3, "gym": 3, "school": 2, "hospital": 1.5, "library": 1, "movie_theater": 1, "park": 1,
}  # fmt: skip


# -- layouts ------------------------------------------------------------------------------------------


class _Sketch:
    """A street graph under construction: node positions and undirected edges with naming hints."""

    def __init__(self, nodes: Sequence[Sequence[float]] = ()):
        self.nodes: list[tuple[float, float]] = [(float(x), float(y)) for x, y in nodes]
        self.edges: list[tuple[int, int]] = []
        self.groups: list[Hashable | None] = []  # edges of one group always form one named street
        self.major: list[bool] = []
        self.locked: list[bool] = []  # never removed when thinning the graph

    def node(self, x: float, y: float) -> int:
        self.nodes.append((float(x), float(y)))
        return len(self.nodes) - 1

    def edge(self, a: int, b: int, group: Hashable | None = None, major: bool = False, locked: bool = False):
        self.edges.append((a, b))
        self.groups.append(group)
        self.major.append(major)
        self.locked.append(locked)


def _unit(bearing_deg: float) -> np.ndarray:
    """Unit vector (x east, y north) of a compass bearing."""
    b = math.radians(bearing_deg)
    return np.array([math.sin(b), math.cos(b)])


def _compass(dx: float, dy: float) -> float:
    return math.degrees(math.atan2(dx, dy)) % 360.0


def _cross(a, b) -> float:
    return a[0] * b[1] - a[1] * b[0]


@dataclass(frozen=True)
class GridLayout:
    """A rotated street grid: lines running along `bearing`, crossed by perpendicular lines.

    `block_along` is the spacing of the cross lines measured along `bearing` (Manhattan's short ~80 m
    blocks), `block_across` the spacing of the lines that run along it (~250 m between avenues).
    """

    bearing: float
    block_along: float
    block_across: float
    size: float = 900.0
    jitter: float = 0.05
    removal: float = 0.07
    major_along: int = 1  # every k-th line along `bearing` is a major street; 0 for none
    major_across: int = 0
    diagonal: float | None = None  # bearing of one major street cutting across the grid (Broadway)

    def build(self, draws: Draws) -> _Sketch:
        u, v = _unit(self.bearing), _unit(self.bearing + 90.0)
        along = self._positions(draws, self.block_along)
        across = self._positions(draws, self.block_across)
        sketch = _Sketch()
        ids = [[sketch.node(*(s * u + t * v)) for t in across] for s in along]
        for i, row in enumerate(ids):
            for j, node in enumerate(row):
                if i + 1 < len(along):
                    major = bool(self.major_along) and j % self.major_along == 0
                    sketch.edge(node, ids[i + 1][j], ("along", j), major, major)
                if j + 1 < len(across):
                    major = bool(self.major_across) and i % self.major_across == 0
                    sketch.edge(node, row[j + 1], ("across", i), major, major)
        if self.diagonal is not None:
            _add_diagonal(sketch, self.diagonal, draws.uniform(-0.1, 0.1) * self.size, snap=12.0)
        return sketch

    def _positions(self, draws: Draws, block: float) -> list[float]:
        count = max(2, round(self.size / block) + 1)
        steps = [block * (1.0 + draws.uniform(-self.jitter, self.jitter)) for _ in range(count - 1)]
        positions = np.concatenate([[0.0], np.cumsum(steps)])
        return (positions - positions[-1] / 2).tolist()


def _add_diagonal(sketch: _Sketch, bearing: float, offset: float, snap: float) -> None:
    """Cut a straight major street through the sketch, splitting the edges it crosses.

    Crossings within `snap` metres of a junction go through that junction instead, so the diagonal
    makes five- and six-way junctions rather than slivers of road.
    """
    d = _unit(bearing)
    centre = np.mean(sketch.nodes, axis=0) + offset * _unit(bearing + 90.0)
    hits: list[tuple[float, int]] = []
    for k in range(len(sketch.edges)):
        a, b = sketch.edges[k]
        p, q = np.array(sketch.nodes[a]), np.array(sketch.nodes[b])
        e = q - p
        denom = _cross(d, e)
        if abs(denom) < 1e-9:
            continue
        s = _cross(centre - p, d) / -denom
        if not 0.0 <= s <= 1.0:
            continue
        t = _cross(p - centre, e) / denom
        length = float(np.hypot(*e))
        if s * length < snap:
            hits.append((t, a))
        elif (1.0 - s) * length < snap:
            hits.append((t, b))
        else:
            middle = sketch.node(*(p + s * e))
            sketch.edges[k] = (a, middle)
            sketch.edge(middle, b, sketch.groups[k], sketch.major[k], sketch.locked[k])
            hits.append((t, middle))
    hits.sort()
    chain = [node for _, node in hits]
    for a, b in zip(chain, chain[1:], strict=False):
        if a != b:
            sketch.edge(a, b, ("diagonal",), True, True)


@dataclass(frozen=True)
class OrganicLayout:
    """Irregular streets: junctions scattered at least `spacing` apart, joined without crossings."""

    spacing: float
    radius: float = 450.0
    removal: float = 0.3
    min_angle: float = 35.0

    def build(self, draws: Draws) -> _Sketch:
        sketch = _Sketch(_poisson_disc(draws, self.radius, self.spacing))
        _connect(sketch, self.spacing, self.min_angle)
        return sketch


@dataclass(frozen=True)
class RadialLayout:
    """Ring roads and radial avenues around a centre (Milan's Cerchia), with organic streets between."""

    rings: tuple[float, ...] = (140.0, 290.0, 430.0)
    spokes: int = 10
    spacing: float = 55.0
    radius: float = 480.0
    removal: float = 0.3
    min_angle: float = 35.0
    ring_edge: float = 75.0  # target length of a ring segment

    def build(self, draws: Draws) -> _Sketch:
        sketch = _Sketch()
        step = 2 * math.pi / self.spokes
        base = draws.uniform(0.0, step)
        spoke_angles = [base + k * step + draws.uniform(-0.2, 0.2) * step for k in range(self.spokes)]
        spoke_nodes: list[list[int]] = [[] for _ in spoke_angles]
        for r, radius in enumerate(self.rings):
            ring: list[int] = []
            for k, angle in enumerate(spoke_angles):
                gap = (spoke_angles[(k + 1) % self.spokes] - angle) % (2 * math.pi)
                extra = max(0, round(gap * radius / self.ring_edge) - 1)
                for m in range(extra + 1):
                    a = angle + gap * m / (extra + 1)
                    rr = radius * (1.0 + draws.uniform(-0.04, 0.04))
                    ring.append(sketch.node(rr * math.cos(a), rr * math.sin(a)))
                    if m == 0:
                        spoke_nodes[k].append(ring[-1])
            for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
                sketch.edge(a, b, ("ring", r), True, True)
        centre = sketch.node(0.0, 0.0)
        for k, angle in enumerate(spoke_angles):
            outer = sketch.node(self.radius * math.cos(angle), self.radius * math.sin(angle))
            chain = ([centre] if k % 2 == 0 else []) + spoke_nodes[k] + [outer]
            for a, b in zip(chain, chain[1:], strict=False):
                sketch.edge(a, b, ("spoke", k), True, True)
        forced = np.array(sketch.nodes)
        segments = [(forced[a], forced[b]) for a, b in sketch.edges]
        fill = [
            p for p in _poisson_disc(draws, self.radius, self.spacing)
            if np.min(np.hypot(*(forced - p).T)) > 0.7 * self.spacing
            and min(_point_segment_distance(p, a, b) for a, b in segments) > 0.45 * self.spacing
        ]  # fmt: skip
        for p in fill:
            sketch.node(*p)
        _connect(sketch, self.spacing, self.min_angle)
        return sketch


Layout = GridLayout | OrganicLayout | RadialLayout


def _poisson_disc(draws: Draws, radius: float, spacing: float, tries: int = 12) -> list[tuple[float, float]]:
    """Points in a disc, no two closer than `spacing` (Bridson's algorithm): junctions of organic streets."""
    points = [(draws.uniform(-0.2, 0.2) * radius, draws.uniform(-0.2, 0.2) * radius)]
    grid = SpatialHash(spacing / math.sqrt(2.0), points)
    active = [0]
    while active:
        slot = draws.index(len(active))
        px, py = points[active[slot]]
        for _ in range(tries):
            angle = draws.uniform(0.0, 2 * math.pi)
            dist = spacing * (1.0 + draws.uniform())
            x, y = px + dist * math.cos(angle), py + dist * math.sin(angle)
            if x * x + y * y > radius * radius:
                continue
            if not _crowded(points, grid, x, y, spacing):
                points.append((x, y))
                grid.add(x, y)
                active.append(len(points) - 1)
                break
        else:
            active[slot] = active[-1]
            active.pop()
    return points


def _crowded(points: list[tuple[float, float]], grid: SpatialHash, x: float, y: float, spacing: float) -> bool:
    """Whether one of `points` lies closer than `spacing` to (x, y)."""
    limit2 = spacing * spacing
    for k in grid.overlapping(x, y, spacing):
        qx, qy = points[k]
        if (qx - x) ** 2 + (qy - y) ** 2 < limit2:
            return True
    return False


def _point_segment_distance(p, a, b) -> float:
    ab = (b[0] - a[0], b[1] - a[1])
    length2 = ab[0] ** 2 + ab[1] ** 2
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1]) / length2))
    return math.hypot(p[0] - a[0] - t * ab[0], p[1] - a[1] - t * ab[1])


def _connect(sketch: _Sketch, spacing: float, min_angle: float) -> None:
    """Join nearby junctions, shortest first, without crossings, sharp corners or grazing a junction.

    Greedy shortest-first joining approximates a Delaunay triangulation; the angle rule drops the
    skinny triangles that would make slivers of land between roads.
    """
    points = np.array(sketch.nodes)
    n = len(points)
    dist = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    first, second = np.nonzero(np.triu(dist < 2.1 * spacing, 1))
    order = np.argsort(dist[first, second], kind="stable")
    starts = np.zeros((len(sketch.edges) + len(order), 2))
    ends = np.zeros_like(starts)
    incident: list[list[float]] = [[] for _ in range(n)]
    present = set()
    for count, (a, b) in enumerate(sketch.edges):
        starts[count], ends[count] = points[a], points[b]
        present.add((min(a, b), max(a, b)))
        _note_angle(incident, points, a, b)
    count = len(sketch.edges)
    limit = math.radians(min_angle)
    for k in order:
        a, b = int(first[k]), int(second[k])
        if (a, b) in present:
            continue
        out_a = math.atan2(*(points[b] - points[a])[::-1])
        out_b = math.atan2(*(points[a] - points[b])[::-1])
        if _too_sharp(incident[a], out_a, limit) or _too_sharp(incident[b], out_b, limit):
            continue
        if _grazes(points, a, b, 0.3 * spacing) or _crosses(
            points[a], points[b], starts[:count], ends[:count]
        ):
            continue
        sketch.edge(a, b)
        starts[count], ends[count] = points[a], points[b]
        count += 1
        present.add((a, b))
        incident[a].append(out_a)
        incident[b].append(out_b)


def _note_angle(incident: list[list[float]], points: np.ndarray, a: int, b: int) -> None:
    incident[a].append(math.atan2(*(points[b] - points[a])[::-1]))
    incident[b].append(math.atan2(*(points[a] - points[b])[::-1]))


def _too_sharp(angles: list[float], angle: float, limit: float) -> bool:
    return any(abs((angle - other + math.pi) % (2 * math.pi) - math.pi) < limit for other in angles)


def _grazes(points: np.ndarray, a: int, b: int, clearance: float) -> bool:
    """Whether the segment a-b passes within `clearance` of another junction."""
    ab = points[b] - points[a]
    rel = points - points[a]
    t = np.clip(rel @ ab / (ab @ ab), 0.0, 1.0)
    gap = np.hypot(*(rel - t[:, None] * ab).T)
    gap[[a, b]] = np.inf
    return bool(np.any(gap < clearance))


def _crosses(p: np.ndarray, q: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
    """Whether p-q properly crosses any of the segments (touching at an endpoint does not count)."""
    if not len(starts):
        return False
    d = q - p
    e = ends - starts
    o1 = d[0] * (starts[:, 1] - p[1]) - d[1] * (starts[:, 0] - p[0])
    o2 = d[0] * (ends[:, 1] - p[1]) - d[1] * (ends[:, 0] - p[0])
    o3 = e[:, 0] * (p[1] - starts[:, 1]) - e[:, 1] * (p[0] - starts[:, 0])
    o4 = e[:, 0] * (q[1] - starts[:, 1]) - e[:, 1] * (q[0] - starts[:, 0])
    eps = 1e-6
    return bool(np.any((o1 * o2 < -eps) & (o3 * o4 < -eps)))


# -- cities -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CityProfile:
    """Everything that makes a city itself: where it is, how its streets run, how it looks, its names."""

    city: str
    label: str
    code: str  # short code used in ids and regions ("NYC")
    continent: str
    anchor: LatLng  # near the real city centre, so cos(latitude) varies as in the real data
    layout: Layout
    style: CityStyle
    pack: NamePack
    major_width: float = 14.0  # kerb-to-kerb road widths in metres
    minor_width: float = 10.0
    sidewalk: float = 3.5
    lot_width: tuple[float, float] = (6.0, 14.0)
    shop_rate: float = 0.7  # share of lots with a ground-floor business
    merge_angle: float = 30.0  # edges continuing within this angle at a junction form one named street


_LAYOUTS = {"grid": GridLayout, "organic": OrganicLayout, "radial": RadialLayout}


def _profile(city: str, layout: dict, style: dict, **settings) -> CityProfile:
    """A city from its entry in data/cities.json; its layout's "kind" names the layout class."""
    kind = _LAYOUTS[layout["kind"]]
    return CityProfile(
        city=city,
        layout=kind(**{k: v for k, v in layout.items() if k != "kind"}),
        style=CityStyle(name=city, **style),
        pack=PACKS[city],
        **settings,
    )


CITIES: dict[str, CityProfile] = {
    city: _profile(city, **entry) for city, entry in read_table("cities.json").items()
}


# -- the world -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    """A straight street segment between junctions `a` and `b`."""

    a: int
    b: int
    street: str
    width: float
    length: float
    major: bool


@dataclass(frozen=True, eq=False)
class StreetGraph:
    """Junctions in local metres and the street segments between them; always connected."""

    nodes: tuple[tuple[float, float], ...]
    edges: tuple[Edge, ...]

    @cached_property
    def adjacency(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """For every node: (edge index, neighbour) of each edge at it."""
        table: list[list[tuple[int, int]]] = [[] for _ in self.nodes]
        for k, e in enumerate(self.edges):
            table[e.a].append((k, e.b))
            table[e.b].append((k, e.a))
        return tuple(map(tuple, table))

    def is_connected(self) -> bool:
        return len(_component(self.adjacency, 0)) == len(self.nodes)


def _component(adjacency: Sequence[Sequence[tuple[int, int]]], start: int, skip: int = -1) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for k, other in adjacency[stack.pop()]:
            if k != skip and other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


@dataclass(frozen=True)
class Place:
    """A business on a ground floor. Its sign is `world.scene.signs[i]` for `world.places[i]`."""

    name: str
    place_id: str
    place_types: tuple[str, ...]
    xy: tuple[float, float]  # local metres, a few metres inside the building, as Google's geocodes are
    geocode: LatLng
    rating: float
    n_reviews: int
    vicinity: str
    facing: float  # compass bearing of the facade's outward normal, towards the street


class PanoLattice:
    """Street-view positions every ~10 m along every street plus one per junction, with a grid hash.

    Positions are kept as the emitted (rounded) lat/lng, and distances are measured on those, so a
    relocated point is exactly a key of the pano mapping.
    """

    def __init__(self, anchor: LatLng, graph: StreetGraph, seed_parts: tuple):
        self.anchor = anchor
        self.node_pano: list[int] = []
        self.geocodes: list[LatLng] = []
        self.ids: list[str] = []
        self.edge: list[int] = []  # the street segment a pano lies on (-1 at a junction)
        self.offset: list[float] = []  # metres from that segment's node `a`
        self.node: list[int] = []  # the junction a pano stands on (-1 along a segment)
        for n, (x, y) in enumerate(graph.nodes):
            self.node_pano.append(self._add(x, y, (*seed_parts, "node", n), -1, 0.0, n))
        for k, e in enumerate(graph.edges):
            (ax, ay), (bx, by) = graph.nodes[e.a], graph.nodes[e.b]
            steps = max(1, round(e.length / PANO_SPACING_M))
            for i in range(1, steps):
                t = i / steps
                self._add(
                    ax + t * (bx - ax), ay + t * (by - ay), (*seed_parts, "edge", k, i), k, t * e.length, -1
                )
        self.xy = np.array([to_xy(anchor, g) for g in self.geocodes])
        self._grid = SpatialHash(_PANO_CELL_M, self.xy.tolist())

    def _add(self, x: float, y: float, parts: tuple, edge: int, offset: float, node: int) -> int:
        self.geocodes.append(to_latlng(self.anchor, x, y))
        self.ids.append(pano_id(*parts))
        self.edge.append(edge)
        self.offset.append(offset)
        self.node.append(node)
        return len(self.ids) - 1

    def nearest(self, x: float, y: float, radius_m: float) -> int | None:
        """Index of the pano nearest to local (x, y) within radius_m metres, or None."""
        best, best_d2 = None, math.inf
        for k in self._grid.around(x, y, math.ceil(radius_m / _PANO_CELL_M)):
            d2 = (self.xy[k, 0] - x) ** 2 + (self.xy[k, 1] - y) ** 2
            if d2 < best_d2:
                best, best_d2 = k, d2
        return None if best_d2 > radius_m * radius_m else best


def pano_id(*parts: object) -> str:
    """A 22-character url-safe id, shaped like Google's pano ids, from stable seeds of `parts`."""
    raw = b"".join(stable_seed(*parts, half).to_bytes(8, "little") for half in (0, 1))
    return base64.urlsafe_b64encode(raw).decode()[:22]


@dataclass(frozen=True, eq=False)
class World:
    """One district of a city: streets, businesses, what the renderer draws, and street-view positions."""

    city: str
    district: int
    profile: CityProfile
    district_name: str
    region: str  # "<District>_<CODE>_<Continent>", as V-IRL's region strings
    anchor: LatLng
    graph: StreetGraph
    places: tuple[Place, ...]
    scene: Scene
    lattice: PanoLattice = field(repr=False)

    @property
    def style(self) -> CityStyle:
        return self.profile.style

    def nearest_pano(self, latlng: Sequence[float], radius_m: float = 20.0) -> tuple[LatLng, str] | None:
        """The street-view position nearest to `latlng` within radius_m, as (geocode, pano_id)."""
        k = self.lattice.nearest(*to_xy(self.anchor, latlng), radius_m + 0.01)
        if k is None or haversine(self.lattice.geocodes[k], latlng) > radius_m:
            return None
        return self.lattice.geocodes[k], self.lattice.ids[k]

    def panos(self) -> list[tuple[LatLng, str]]:
        """Every street-view position: the procedural `gps_pano_mapping`."""
        return list(zip(self.lattice.geocodes, self.lattice.ids, strict=True))


def build_world(city: str, district: int) -> World:
    """The district `district` (0, 1, 2, ...) of `city`; cached, so repeated calls are free."""
    if city not in CITIES:
        raise ValueError(f"unknown city {city!r}; known cities: {', '.join(CITIES)}")
    if isinstance(district, bool) or not isinstance(district, (int, np.integer)) or district < 0:
        raise ValueError(f"district must be a non-negative int, not {district!r}")
    return _build_world(city, int(district))


@lru_cache(maxsize=32)
def _build_world(city: str, district: int) -> World:
    profile = CITIES[city]
    anchor = district_anchor(profile.anchor, district)
    graph = _street_graph(profile, city, district)
    names = NameMaker(profile.pack, Draws(rng(city, district, "names")))
    district_name = Draws(rng(city, district, "district")).pick(profile.pack.districts)
    lots = _lots(
        profile, graph, Draws(rng(city, district, "lots")), Draws(rng(city, district, "pois")), names
    )
    places, signs = _places(profile, anchor, city, district, district_name, lots)
    scene = Scene(
        style=profile.style,
        facades=tuple(lot.facade for lot in lots),
        signs=signs,
        roads=tuple(Road(*graph.nodes[e.a], *graph.nodes[e.b], e.width) for e in graph.edges),
    )
    region = f"{district_name.replace(' ', '')}_{profile.code}_{profile.continent}"
    return World(
        city,
        district,
        profile,
        district_name,
        region,
        anchor,
        graph,
        places,
        scene,
        PanoLattice(anchor, graph, (city, district, "pano")),
    )


def district_anchor(anchor: LatLng, district: int) -> LatLng:
    """Districts spiral out from the city anchor (golden-angle steps) so no two overlap."""
    if district == 0:
        return anchor
    angle = math.radians(137.508 * district)
    r = DISTRICT_SPACING_M * math.sqrt(district)
    return to_latlng(anchor, r * math.sin(angle), r * math.cos(angle))


# -- streets ---------------------------------------------------------------------------------------------


def _street_graph(profile: CityProfile, city: str, district: int) -> StreetGraph:
    sketch = profile.layout.build(Draws(rng(city, district, "streets")))
    keep = _largest_component(sketch)
    _thin(sketch, keep, profile.layout.removal, Draws(rng(city, district, "thinning")))
    index = {old: new for new, old in enumerate(sorted(keep))}
    nodes = tuple(sketch.nodes[old] for old in sorted(keep))
    live = [k for k, (a, b) in enumerate(sketch.edges) if a in index and b in index and a != b]
    streets = _streets(sketch, live, profile.merge_angle)
    _promote_long_streets(sketch, streets)
    names = NameMaker(profile.pack, Draws(rng(city, district, "street-names")))
    street_of = {}
    for street in streets:
        street_of.update(dict.fromkeys(street, names.street(sketch.major[street[0]])))
    edges = []
    for k in live:
        a, b = index[sketch.edges[k][0]], index[sketch.edges[k][1]]
        width = profile.major_width if sketch.major[k] else profile.minor_width
        edges.append(Edge(a, b, street_of[k], width, math.dist(nodes[a], nodes[b]), sketch.major[k]))
    return StreetGraph(nodes, tuple(edges))


def _sketch_adjacency(sketch: _Sketch, skip: set[int] = frozenset()) -> list[list[tuple[int, int]]]:
    table: list[list[tuple[int, int]]] = [[] for _ in sketch.nodes]
    for k, (a, b) in enumerate(sketch.edges):
        if k not in skip and a != b:
            table[a].append((k, b))
            table[b].append((k, a))
    return table


def _largest_component(sketch: _Sketch) -> set[int]:
    adjacency = _sketch_adjacency(sketch)
    remaining = {n for n, links in enumerate(adjacency) if links}
    best: set[int] = set()
    while remaining:
        part = _component(adjacency, min(remaining))
        remaining -= part
        best = max(best, part, key=len)
    return best


def _thin(sketch: _Sketch, keep: set[int], fraction: float, draws: Draws) -> None:
    """Remove a share of the unlocked edges (marking them as self-loops) without creating dead ends or
    disconnecting the graph: fewer, larger blocks and T-junctions, as real street networks have.

    The longest side of a triangular block goes first, which turns triangle pairs into four- and
    five-sided blocks; a near-triangulation otherwise reads as shards rather than streets.
    """
    candidates = [
        k for k, (a, b) in enumerate(sketch.edges) if not sketch.locked[k] and a in keep and b in keep
    ]
    longest = _longest_triangle_sides(sketch)
    candidates.sort(key=lambda k: (k not in longest, draws.uniform()))
    adjacency = _sketch_adjacency(sketch)
    degree = [len(links) for links in adjacency]
    removed = 0
    target = round(fraction * len(candidates))
    for k in candidates:
        if removed >= target:
            break
        a, b = sketch.edges[k]
        if degree[a] <= 2 or degree[b] <= 2 or b not in _component(adjacency, a, skip=k):
            continue
        adjacency[a] = [link for link in adjacency[a] if link[0] != k]
        adjacency[b] = [link for link in adjacency[b] if link[0] != k]
        degree[a] -= 1
        degree[b] -= 1
        sketch.edges[k] = (a, a)
        removed += 1


def _longest_triangle_sides(sketch: _Sketch) -> set[int]:
    index = {(min(a, b), max(a, b)): k for k, (a, b) in enumerate(sketch.edges)}
    neighbours: dict[int, set[int]] = {}
    for a, b in sketch.edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    longest = set()
    for (a, b), k in index.items():
        for c in neighbours[a] & neighbours[b]:
            sides = [k, index[(min(a, c), max(a, c))], index[(min(b, c), max(b, c))]]
            longest.add(max(sides, key=lambda e: math.dist(*(sketch.nodes[n] for n in sketch.edges[e]))))
    return longest


def _streets(sketch: _Sketch, live: list[int], merge_angle: float) -> list[list[int]]:
    """Group edges into streets: a layout's groups (grid lines, rings, spokes) stay whole, other edges
    join the edge that continues them most nearly straight through a junction."""
    parent = {k: k for k in live}

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    by_group: dict[Hashable, int] = {}
    for k in live:
        group = sketch.groups[k]
        if group is not None:
            parent[root(k)] = root(by_group.setdefault(group, k))
    ends: dict[int, list[tuple[int, float]]] = {}
    for k in live:
        if sketch.groups[k] is None:
            a, b = sketch.edges[k]
            (ax, ay), (bx, by) = sketch.nodes[a], sketch.nodes[b]
            ends.setdefault(a, []).append((k, math.atan2(by - ay, bx - ax)))
            ends.setdefault(b, []).append((k, math.atan2(ay - by, ax - bx)))
    for links in ends.values():
        pairs = sorted(
            (abs(abs((p - q + math.pi) % (2 * math.pi) - math.pi) - math.pi), i, j)
            for i, (_, p) in enumerate(links)
            for j, (_, q) in enumerate(links)
            if i < j
        )
        used: set[int] = set()
        for bend, i, j in pairs:
            if bend < math.radians(merge_angle) and i not in used and j not in used:
                used |= {i, j}
                parent[root(links[i][0])] = root(links[j][0])
    members: dict[int, list[int]] = {}
    for k in live:
        members.setdefault(root(k), []).append(k)
    return sorted(members.values())


def _promote_long_streets(sketch: _Sketch, streets: list[list[int]], share: float = 0.15) -> None:
    """Make the longest free-form streets major (wider, named as main roads), as an organic city's
    through routes are."""

    def length(street: list[int]) -> float:
        return sum(math.dist(*(sketch.nodes[n] for n in sketch.edges[k])) for k in street)

    free = [street for street in streets if len(street) > 1 and all(sketch.groups[k] is None for k in street)]
    free.sort(key=length, reverse=True)
    for street in free[: round(share * len(free))]:
        for k in street:
            sketch.major[k] = True


# -- lots, businesses, signs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lot:
    facade: Facade
    edge: int
    name: str | None
    place_type: str | None
    inset: float
    facing: float
    street: str
    number: int


def _lots(
    profile: CityProfile, graph: StreetGraph, draws: Draws, pois: Draws, names: NameMaker
) -> list[_Lot]:
    """Line both sides of every street with building lots; most get a business with a sign that fits.

    A lot that would stand on another road or its sidewalk (in the sharp corners of organic blocks) is
    left empty.
    """
    roads = _RoadIndex(graph)
    outgoing = _outgoing_angles(graph)
    numbers: dict[str, int] = {}
    lots: list[_Lot] = []
    style = profile.style
    for k, e in enumerate(graph.edges):
        a, b = np.array(graph.nodes[e.a]), np.array(graph.nodes[e.b])
        u = (b - a) / e.length
        heading = math.atan2(u[1], u[0])
        for side in (1, -1):
            normal = side * np.array([-u[1], u[0]])  # from the centreline towards this side's buildings
            start = _corner_trim(graph, profile, outgoing, e.a, k, heading, side)
            end = e.length - _corner_trim(graph, profile, outgoing, e.b, k, heading + math.pi, -side)
            spans = _split_frontage(profile, start, end, draws, pois, names)
            if not spans:
                continue
            line = a + (e.width / 2 + profile.sidewalk) * normal
            p0 = line + np.outer([span[0] for span in spans], u)
            p1 = line + np.outer([span[1] for span in spans], u)
            facing = _compass(-normal[0], -normal[1])
            for (_, _, name, place_type), q0, q1, clear in zip(
                spans, p0.tolist(), p1.tolist(), roads.clear(p0, p1, k).tolist(), strict=True
            ):
                if not clear:
                    if name:
                        names.release(name)
                    continue
                height = FLOOR_HEIGHT_M * (
                    style.floors[0] + draws.index(style.floors[1] - style.floors[0] + 1)
                )
                color = _vary(draws.pick(style.building_palette), draws.uniform(-0.08, 0.08))
                facade = Facade(*q0, *q1, height + draws.uniform(0.0, 1.2), color)
                numbers[e.street] = numbers.get(e.street, 0) + 1
                lots.append(
                    _Lot(
                        facade,
                        k,
                        name,
                        place_type,
                        draws.uniform(1.5, 3.5),
                        facing,
                        e.street,
                        numbers[e.street],
                    )
                )
    return lots


_TYPES = tuple(TYPE_WEIGHTS)
_TYPE_CUMULATIVE = np.cumsum(list(TYPE_WEIGHTS.values())) / sum(TYPE_WEIGHTS.values())


def _split_frontage(
    profile: CityProfile, start: float, end: float, draws: Draws, pois: Draws, names: NameMaker
) -> list[tuple[float, float, str | None, str | None]]:
    """(from, to, name, place type) of the lots along one frontage; a shop's lot is widened to fit its sign.

    Corner lots are shops more often, as on real high streets (and they are the landmarks of junctions).
    """
    spans = []
    cursor = start
    while end - cursor >= MIN_LOT_M:
        width = draws.uniform(*profile.lot_width)
        corner = cursor == start or end - cursor <= width + MIN_LOT_M
        name = place_type = None
        if draws.chance(max(profile.shop_rate, 0.85) if corner else profile.shop_rate):
            place_type = _TYPES[int(np.searchsorted(_TYPE_CUMULATIVE, pois.uniform()))]
            name = names.place(place_type)
            width = max(width, sign_width(name) + 0.8)
        width = min(width, end - cursor)
        if end - cursor - width < MIN_LOT_M:
            width = end - cursor
        if name and sign_width(name) + 0.4 > width:
            names.release(name)
            name = place_type = None
        spans.append((cursor, cursor + width, name, place_type))
        cursor += width
    return spans


def sign_width(text: str) -> float:
    """Metres of sign needed for a name at the renderer's letter size."""
    return SIGN_CHAR_WIDTH_M * len(text) + SIGN_MARGIN_M


def _vary(color: RGB, amount: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * (1.0 + amount))))) for c in color)


def _outgoing_angles(graph: StreetGraph) -> list[list[tuple[float, int]]]:
    """For every node, (direction, edge) of each edge leaving it, sorted counter-clockwise."""
    table: list[list[tuple[float, int]]] = [[] for _ in graph.nodes]
    for n, links in enumerate(graph.adjacency):
        x, y = graph.nodes[n]
        for k, other in links:
            ox, oy = graph.nodes[other]
            table[n].append((math.atan2(oy - y, ox - x), k))
        table[n].sort()
    return table


def _corner_trim(
    graph: StreetGraph,
    profile: CityProfile,
    outgoing: list[list[tuple[float, int]]],
    node: int,
    edge: int,
    heading: float,
    side: int,
) -> float:
    """How far from `node` the frontage on `side` of `edge` starts: where it meets the frontage of the
    neighbouring street in that corner, so buildings at a junction close the corner without overlapping.

    side=+1 is the left of the edge leaving `node` along `heading`, whose corner neighbour is the next
    edge counter-clockwise; side=-1 mirrors it.
    """
    links = outgoing[node]
    if len(links) < 2:
        return 0.0
    here = next(i for i, (_, k) in enumerate(links) if k == edge)
    angle_next, next_edge = links[(here + side) % len(links)]
    sector = (side * (angle_next - heading)) % (2 * math.pi)
    if sector == 0.0 or sector > math.radians(170.0):
        return 0.0
    own = graph.edges[edge].width / 2 + profile.sidewalk
    other = graph.edges[next_edge].width / 2 + profile.sidewalk
    return max(0.0, (other + own * math.cos(sector)) / math.sin(sector))


class _RoadIndex:
    """Every street segment as arrays, to check in bulk that facades stay off roads and sidewalks."""

    def __init__(self, graph: StreetGraph):
        self.starts = np.array([graph.nodes[e.a] for e in graph.edges])
        self.ends = np.array([graph.nodes[e.b] for e in graph.edges])
        self.margin = np.array([e.width / 2 + _CLEAR_OF_ROADS_M for e in graph.edges])
        self.low = np.minimum(self.starts, self.ends) - self.margin[:, None]
        self.high = np.maximum(self.starts, self.ends) + self.margin[:, None]

    def clear(self, p0: np.ndarray, p1: np.ndarray, own: int) -> np.ndarray:
        """For each facade p0[i]-p1[i] on street segment `own`: whether its ends and middle keep clear of
        every other road."""
        points = np.concatenate([p0, (p0 + p1) / 2, p1])
        near = np.all((self.low <= points.max(axis=0)) & (self.high >= points.min(axis=0)), axis=1)
        near[own] = False
        if not near.any():
            return np.ones(len(p0), bool)
        a, b, margin = self.starts[near], self.ends[near], self.margin[near]
        ab = b - a
        rel = points[:, None, :] - a[None]
        t = np.clip((rel * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
        gap = np.linalg.norm(rel - t[..., None] * ab, axis=-1)
        return ~(gap < margin).any(axis=1).reshape(3, -1).any(axis=0)


def _places(
    profile: CityProfile, anchor: LatLng, city: str, district: int, district_name: str, lots: list[_Lot]
) -> tuple[tuple[Place, ...], tuple[Sign, ...]]:
    """Businesses and their signs, in the same order; reviews are heavy-tailed (median ~60) as on Google."""
    shops = [lot for lot in lots if lot.name]
    draws = rng(city, district, "reviews")
    reviews = np.maximum(0, np.round(np.exp(draws.normal(math.log(60.0), 1.25, len(shops))))).astype(int)
    ratings = np.round(np.clip(draws.normal(4.25, 0.3, len(shops)), 3.5, 4.9), 1)
    colors = Draws(rng(city, district, "sign-colors"))
    vicinity = profile.pack.vicinity
    style = profile.style
    places, signs = [], []
    for i, lot in enumerate(shops):
        f = lot.facade
        ox, oy = math.sin(math.radians(lot.facing)), math.cos(math.radians(lot.facing))
        mx, my = (f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2
        x, y = mx - lot.inset * ox, my - lot.inset * oy
        places.append(Place(
            name=lot.name,
            place_id=f"vw_{profile.code.lower()}{district}_p_{i:06d}",
            place_types=(lot.place_type, *TYPE_TAILS[lot.place_type], "point_of_interest", "establishment"),
            xy=(x, y),
            geocode=to_latlng(anchor, x, y),
            rating=float(ratings[i]),
            n_reviews=int(reviews[i]),
            vicinity=vicinity.format(number=lot.number, street=lot.street, district=district_name),
            facing=lot.facing,
        ))  # fmt: skip
        text = lot.name.upper() if style.uppercase_signs else lot.name
        signs.append(
            Sign(
                text,
                mx + 0.05 * ox,
                my + 0.05 * oy,
                lot.facing,
                sign_width(text),
                SIGN_HEIGHT_M,
                SIGN_ELEVATION_M,
                colors.pick(style.sign_backgrounds),
                style.sign_text,
            )
        )
    return tuple(places), tuple(signs)
