"""Route records of a procedural district, collected the way V-IRL's CollectVLNRoutes collects them.

`route_record(world, i, lengths)` is the i-th route of a district (virl.md §3.6): a destination business
whose street-view position is close to it and whose sign can be seen from there, a start business a
walk away, the shortest walk between their street-view positions cut into Directions-style steps, and
every field of a released route record (§2.2) derived from that walk. Text-facing numbers (bearings,
distances, relations) are computed from the emitted lat/lng, as the original computes them.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shiftlab.tasks.virl.geo import LatLng, bearing, direction_word, haversine, relation_word
from shiftlab.tasks.virl.milestones import NO_LANDMARK, Milestone, format_milestone_info, relative_turn
from shiftlab.tasks.virl.names import Draws
from shiftlab.tasks.virl.seeding import rng
from shiftlab.tasks.virl.spatial import SpatialHash
from shiftlab.tasks.virl.world import Place, World

LANDMARK_RADIUS_M = 18.0  # V-IRL: landmarks are places this close to a milestone ...
LANDMARK_MIN_REVIEWS = 10  # ... with at least this many reviews, the most reviewed first
SIGN_RANGE_M = 25.0  # a sign counts as visible from at most this far ...
SIGN_MAX_ANGLE = 75.0  # ... and from at most this far off its facing direction
DEST_PANO_M = 18.0  # the destination's street-view position is at most this far from it
START_PANO_M = 20.0  # the start's relocation radius (the env's MAPPING_RADIUS)
MIN_LEG_M = 12.0  # shorter legs would be swallowed by the rail's 5 m and 8 m rules (virl.md Q6, Q7)
STEP_TURN_DEG = 25.0  # a Directions step ends where the walk bends more than this at a junction ...
STEP_DEVIATION_M = 10.0  # ... or strays this far from its chord (half the rail's 20 m snapping radius)
WALKING_SPEED_MPS = 1.4
MAX_ATTEMPTS = 500
_PLACE_CELL_M = 20.0


@dataclass(frozen=True)
class RouteLengths:
    """How long routes are: milestone count, walked metres, and crow-fly metres from start to destination."""

    milestones: tuple[int, int]
    distance: tuple[float, float]
    start_radius: tuple[float, float]


LENGTHS: dict[str, RouteLengths] = {
    "train": RouteLengths((3, 6), (150.0, 600.0), (100.0, 450.0)),
    "mini": RouteLengths((2, 3), (40.0, 200.0), (40.0, 150.0)),  # V-IRL's shipped VLN-mini limits
}


def route_records(world: World, count: int, lengths: str = "train") -> list[dict]:
    return [route_record(world, i, lengths) for i in range(count)]


def route_record(world: World, index: int, lengths: str = "train") -> dict:
    """The index-th route of the district as a V-IRL route record; a pure function of
    (city, district, index, lengths). Candidates failing a filter are replaced by the next sub-index."""
    if lengths not in LENGTHS:
        raise ValueError(f"lengths must be one of {tuple(LENGTHS)}, not {lengths!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"route index must be a non-negative int, not {index!r}")
    limits = LENGTHS[lengths]
    catalog = _catalog(world)
    for attempt in range(MAX_ATTEMPTS):
        draws = Draws(rng(world.city, world.district, "route", lengths, int(index), attempt), block=64)
        if attempt < 4:  # distinct indices start from distinct destinations, so routes rarely repeat
            dest = catalog.destinations[catalog.order(lengths)[index % len(catalog.destinations)]]
        else:
            dest = draws.pick(catalog.destinations)
        route = _try_route(world, catalog, dest, limits, draws)
        if route is not None:
            return _record(world, route, Draws(rng(world.city, world.district, "prose", lengths, int(index))))
    raise RuntimeError(f"no route passes the filters in {world.city} district {world.district}")


# -- what a district offers for routes ------------------------------------------------------------------


class _Catalog:
    """Per-world lookups for route collection: each place's street-view position, the possible
    destinations, and a grid of places for landmark searches."""

    def __init__(self, world: World):
        self.world = world
        lattice = world.lattice
        self.pano = [lattice.nearest(*p.xy, START_PANO_M) for p in world.places]
        self.destinations = [
            i for i, (place, pano) in enumerate(zip(world.places, self.pano, strict=True))
            if pano is not None
            and haversine(place.geocode, lattice.geocodes[pano]) <= DEST_PANO_M
            and sign_visible(world, i, lattice.xy[pano])
        ]  # fmt: skip
        self.xy = np.array([p.xy for p in world.places])
        self.grid = SpatialHash(_PLACE_CELL_M, self.xy.tolist())
        self._orders: dict[str, list[int]] = {}

    def order(self, lengths: str) -> list[int]:
        """A fixed shuffle of the destinations per length preset."""
        if lengths not in self._orders:
            generator = rng(self.world.city, self.world.district, "route-order", lengths)
            self._orders[lengths] = generator.permutation(len(self.destinations)).tolist()
        return self._orders[lengths]

    def near(self, x: float, y: float) -> list[int]:
        """Places in the 3x3 grid cells around (x, y): a superset of those within 20 m."""
        return self.grid.around(x, y)


@lru_cache(maxsize=16)
def _catalog(world: World) -> _Catalog:
    return _Catalog(world)


def sign_visible(world: World, place: int, xy) -> bool:
    """Whether place's sign can be read from xy: near enough, and looked at from in front of it."""
    sign = world.scene.signs[place]
    dx, dy = xy[0] - sign.x, xy[1] - sign.y
    distance = math.hypot(dx, dy)
    if distance > SIGN_RANGE_M:
        return False
    if distance == 0.0:
        return True
    off = abs((math.degrees(math.atan2(dx, dy)) - sign.facing + 180.0) % 360.0 - 180.0)
    return off < SIGN_MAX_ANGLE


# -- one route -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    start: int  # place indices
    dest: int
    steps: list[list[int]]  # pano indices of each step's vertices; a step starts where the last ended
    streets: list[str]
    landmarks: list[int | None]  # place index per non-final milestone


def _try_route(
    world: World, catalog: _Catalog, dest: int, limits: RouteLengths, draws: Draws
) -> _Route | None:
    start = _pick_start(catalog, dest, limits, draws)
    if start is None:
        return None
    walk = _walk(world, catalog.pano[start], catalog.pano[dest])
    if walk is None:
        return None
    steps, streets = _steps(world, *walk)
    if not limits.milestones[0] <= len(steps) <= limits.milestones[1]:
        return None
    geocodes = world.lattice.geocodes
    lengths = [_path_length(world, step) for step in steps]
    if not limits.distance[0] <= sum(lengths) <= limits.distance[1]:
        return None
    if min(lengths) < MIN_LEG_M or any(haversine(geocodes[s[0]], geocodes[s[-1]]) < MIN_LEG_M for s in steps):
        return None
    landmarks = [_landmark(world, catalog, step[-1], (start, dest)) for step in steps[:-1]]
    return _Route(start, dest, steps, streets, landmarks)


def _pick_start(catalog: _Catalog, dest: int, limits: RouteLengths, draws: Draws) -> int | None:
    gap = np.hypot(*(catalog.xy - catalog.xy[dest]).T)
    low, high = limits.start_radius
    candidates = np.nonzero((gap >= low) & (gap <= high))[0].tolist()
    candidates = [
        i for i in candidates if catalog.pano[i] is not None and catalog.pano[i] != catalog.pano[dest]
    ]
    return draws.pick(candidates) if candidates else None


def _walk(world: World, start: int, dest: int) -> tuple[list[int], list[str]] | None:
    """The shortest walk along streets between two street-view positions, as a list of pano indices
    (start, every junction passed, destination) and the street of each segment between them."""
    lattice, graph = world.lattice, world.graph
    seeds = _ends(world, start)
    targets = dict(_ends(world, dest))
    best = (math.inf, -1)
    same_edge = lattice.edge[start] >= 0 and lattice.edge[start] == lattice.edge[dest]
    if same_edge:
        best = (abs(lattice.offset[start] - lattice.offset[dest]), -2)
    distance = {node: cost for node, cost in seeds}
    previous: dict[int, int] = {node: -1 for node, _ in seeds}
    queue = [(cost, node) for node, cost in seeds]
    heapq.heapify(queue)
    done: set[int] = set()
    while queue:
        cost, node = heapq.heappop(queue)
        if node in done:
            continue
        if cost >= best[0]:
            break
        done.add(node)
        if node in targets and cost + targets[node] < best[0]:
            best = (cost + targets[node], node)
        for k, other in graph.adjacency[node]:
            total = cost + graph.edges[k].length
            if total < distance.get(other, math.inf):
                distance[other] = total
                previous[other] = node
                heapq.heappush(queue, (total, other))
    if best[1] == -1 or start == dest:
        return None
    if best[1] == -2:
        return [start, dest], [graph.edges[lattice.edge[start]].street]
    nodes = [best[1]]
    while previous[nodes[-1]] != -1:
        nodes.append(previous[nodes[-1]])
    nodes.reverse()
    panos = [lattice.node_pano[n] for n in nodes]
    streets = [_street_between(world, a, b) for a, b in zip(nodes, nodes[1:], strict=False)]
    if panos[0] != start:
        panos.insert(0, start)
        streets.insert(0, graph.edges[lattice.edge[start]].street)
    if panos[-1] != dest:
        panos.append(dest)
        streets.append(graph.edges[lattice.edge[dest]].street)
    return panos, streets


def _ends(world: World, pano: int) -> list[tuple[int, float]]:
    """The junctions a street-view position connects to, with the metres to each."""
    lattice = world.lattice
    if lattice.node[pano] >= 0:
        return [(lattice.node[pano], 0.0)]
    edge = world.graph.edges[lattice.edge[pano]]
    return [(edge.a, lattice.offset[pano]), (edge.b, edge.length - lattice.offset[pano])]


def _street_between(world: World, a: int, b: int) -> str:
    graph = world.graph
    k = min((k for k, other in graph.adjacency[a] if other == b), key=lambda k: graph.edges[k].length)
    return graph.edges[k].street


def _steps(world: World, panos: list[int], streets: list[str]) -> tuple[list[list[int]], list[str]]:
    """Cut a walk into Directions-style steps: a new step where the street name changes, the walk bends
    more than STEP_TURN_DEG at a junction, or a curving street would stray from the straight line the
    rail interpolates between milestones."""
    xy = world.lattice.xy
    steps = [[panos[0], panos[1]]]
    names = [streets[0]]
    for i in range(1, len(panos) - 1):
        bend = _angle(_heading(xy[panos[i - 1]], xy[panos[i]]), _heading(xy[panos[i]], xy[panos[i + 1]]))
        candidate = [*steps[-1], panos[i + 1]]
        if streets[i] != names[-1] or bend > STEP_TURN_DEG or _strays(xy, candidate):
            steps.append([panos[i], panos[i + 1]])
            names.append(streets[i])
        else:
            steps[-1] = candidate
    return steps, names


def _heading(a, b) -> float:
    return math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0


def _angle(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _signed_turn(before: float, after: float) -> float:
    """Turn from one heading to the next in (-180, 180]: positive is to the right."""
    delta = (after - before + 180.0) % 360.0 - 180.0
    return 180.0 if delta == -180.0 else delta


def _strays(xy: np.ndarray, step: list[int]) -> bool:
    a, b = xy[step[0]], xy[step[-1]]
    chord = b - a
    length = math.hypot(*chord)
    if length == 0.0:
        return True
    return any(
        abs(chord[0] * (xy[p][1] - a[1]) - chord[1] * (xy[p][0] - a[0])) / length > STEP_DEVIATION_M
        for p in step[1:-1]
    )


def _path_length(world: World, step: list[int]) -> float:
    g = world.lattice.geocodes
    return sum(haversine(g[a], g[b]) for a, b in zip(step, step[1:], strict=False))


def _landmark(world: World, catalog: _Catalog, pano: int, exclude: tuple[int, ...]) -> int | None:
    """V-IRL's landmark rule (the most reviewed place within 18 m with at least 10 reviews), skipping
    places whose sign cannot be read from the milestone, so the image task stays solvable."""
    here = world.lattice.geocodes[pano]
    x, y = world.lattice.xy[pano]
    candidates = []
    for i in catalog.near(x, y):
        place = world.places[i]
        if i in exclude or place.n_reviews < LANDMARK_MIN_REVIEWS:
            continue
        distance = haversine(here, place.geocode)
        if distance <= LANDMARK_RADIUS_M:
            candidates.append((-place.n_reviews, distance, i))
    for _, _, i in sorted(candidates):
        if sign_visible(world, i, (x, y)):
            return i
    return None


# -- the record ------------------------------------------------------------------------------------------


def _record(world: World, route: _Route, prose: Draws) -> dict:
    lattice = world.lattice
    start, dest = world.places[route.start], world.places[route.dest]
    start_pano = lattice.geocodes[route.steps[0][0]]
    milestones = [lattice.geocodes[step[-1]] for step in route.steps]
    arrivals = [bearing(a, b) for a, b in zip([start_pano, *milestones], milestones, strict=False)]
    distances = [round(_path_length(world, step)) for step in route.steps]
    times = [round(d / WALKING_SPEED_MPS) for d in distances]
    landmark_list = []
    texts = []
    for k, (point, arrival) in enumerate(zip(milestones, arrivals, strict=True)):
        if k == len(milestones) - 1:
            relation = relation_word(bearing(point, dest.geocode) - arrival)
            texts.append(f"The destination {dest.name} is on your {relation}")
            continue
        landmark = route.landmarks[k]
        if landmark is None:
            landmark_list.append(None)
            texts.append(NO_LANDMARK)
            continue
        place = world.places[landmark]
        relation = relation_word(bearing(point, place.geocode) - arrival)
        texts.append(f"{place.name} is on your {relation}")
        landmark_list.append(
            {**place_record(place, point), "spatial_relation": relation, "expression": texts[-1]}
        )
    blocks = [
        Milestone(k + 1, texts[k], distances[k], int(arrivals[k - 1]) if k else 0, int(arrivals[k]))
        for k in range(len(milestones))
    ]
    return {
        "dest_place": {**place_record(dest, start.geocode), "region": world.region,
                       "relocated_geocode": list(milestones[-1])},
        "start_place": {**place_record(start, dest.geocode), "region": world.region,
                        "relocated_geocode": list(start_pano)},
        "route_results": {
            "geocode_list": [list(g) for g in milestones],
            "polyline": [encode_polyline([lattice.geocodes[p] for p in step]) for step in route.steps],
            "instructions": _directions(world, route, texts[-1]),
            "distance_list": distances,
            "time_list": times,
            "time": sum(times),
            "distance": sum(distances),
            "n_landmarks": sum(lm is not None for lm in landmark_list),
            "landmark_list": landmark_list,
        },
        "init_heading": 0,
        "instruction": _prose(blocks, route.streets, dest.name, prose),
        "milestone_info": format_milestone_info(blocks),
    }  # fmt: skip


def place_record(place: Place, origin: LatLng) -> dict:
    """A place as Google's Places fields; distance and heading are from the point that looked it up."""
    return {
        "name": place.name,
        "geocode": list(place.geocode),
        "rating": place.rating,
        "place_id": place.place_id,
        "distance": haversine(origin, place.geocode),
        "n_reviews": place.n_reviews,
        "heading": bearing(origin, place.geocode),
        "photo_reference": None,
        "place_types": list(place.place_types),
        "plus_code": None,
        "vicinity": place.vicinity,
    }


def _directions(world: World, route: _Route, final_text: str) -> list[str]:
    """Google-style HTML step instructions ("Head <b>north</b> on <b>X</b>", "Turn <b>left</b> onto ...")."""
    g = world.lattice.geocodes
    lines = []
    for k, (step, street) in enumerate(zip(route.steps, route.streets, strict=True)):
        heading = bearing(g[step[0]], g[step[1]])
        if k == 0:
            line = f"Head <b>{direction_word(heading)}</b> on <b>{street}</b>"
            if len(route.steps) > 1 and route.streets[1] != street:
                line += f" toward <b>{route.streets[1]}</b>"
        else:
            before = route.steps[k - 1]
            line = _turn_html(
                _signed_turn(bearing(g[before[-2]], g[before[-1]]), heading),
                street,
                same_street=street == route.streets[k - 1],
            )
        lines.append(line)
    relation = final_text.rsplit(" is on your ", 1)[-1]
    side = "right" if "right" in relation else "left" if "left" in relation else None
    if side:
        lines[-1] += f'<div style="font-size:0.9em">Destination will be on the {side}</div>'
    return lines


def _turn_html(delta: float, street: str, same_street: bool) -> str:
    side = "right" if delta > 0 else "left"
    size = abs(delta)
    if size < 15.0:
        return f"Continue on <b>{street}</b>" if same_street else f"Continue onto <b>{street}</b>"
    word = f"slight {side}" if size < 60.0 else side if size < 135.0 else f"sharp {side}"
    return f"Turn <b>{word}</b> " + (
        f"to stay on <b>{street}</b>" if same_street else f"onto <b>{street}</b>"
    )


_OPENERS = (
    "First, face {dir} and walk along {street} for about {d} meters{lm}.",
    "Start by heading {dir} on {street}; after about {d} meters you reach a junction{lm}.",
    "Begin walking {dir} along {street} for roughly {d} meters{lm}.",
)
_MIDDLES = (
    "Then turn {turn} onto {street} and go {dir} for about {d} meters{lm}.",
    "Next, make a {slight} turn and follow {street} {dir} for roughly {d} meters{lm}.",
    "At that corner, turn {turn} to head {dir} along {street}, about {d} meters{lm}.",
)
_CLOSERS = (
    "Finally, turn {turn} to face {dir} and walk about {d} meters; "
    "your destination, {name}, will be on your {rel}.",
    "To finish, turn {turn} and walk {dir} for about {d} meters until {name}, "
    "your destination, is on your {rel}.",
    "Lastly, turn {turn} toward the {dir} and continue about {d} meters; {name} will be on your {rel}.",
)
_SOLE = "Walk {dir} along {street} for about {d} meters; your destination, {name}, will be on your {rel}."


def _prose(blocks: list[Milestone], streets: list[str], dest_name: str, draws: Draws) -> str:
    """A deterministic paraphrase of the milestones standing in for V-IRL's GPT-4 instruction (unused by
    the environment, kept so the record is complete)."""
    lines = []
    for k, (block, street) in enumerate(zip(blocks, streets, strict=True)):
        turn = relative_turn(blocks[k - 1].heading, block.heading) if k else ""
        fields = {
            "dir": block.direction, "street": street, "d": max(10, round(block.distance_m / 10) * 10),
            "turn": turn, "slight": turn.replace("slightly", "slight"), "name": dest_name,
            "rel": block.landmarks.rsplit(" is on your ", 1)[-1],
            "lm": "" if block.landmarks == NO_LANDMARK else f", where {block.landmarks}",
        }  # fmt: skip
        lines.append(draws.pick(_templates(k, len(blocks))).format(**fields))
    return "\n".join(lines)


def _templates(k: int, count: int) -> tuple[str, ...]:
    if k == count - 1:
        return _CLOSERS if k else (_SOLE,)
    return _MIDDLES if k else _OPENERS


def encode_polyline(points) -> str:
    """Google's encoded polyline: 1e-5 degree deltas, zigzag-signed, in 5-bit chunks offset by 63."""
    out = []
    last = (0, 0)
    for lat, lng in points:
        here = (round(lat * 1e5), round(lng * 1e5))
        for delta in (here[0] - last[0], here[1] - last[1]):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                out.append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            out.append(chr(value + 63))
        last = here
    return "".join(out)


def decode_polyline(text: str) -> list[LatLng]:
    """The inverse of encode_polyline (to 1e-5 degrees)."""
    values, value, shift = [], 0, 0
    for char in text:
        chunk = ord(char) - 63
        value |= (chunk & 0x1F) << shift
        shift += 5
        if chunk < 0x20:
            values.append(~(value >> 1) if value & 1 else value >> 1)
            value, shift = 0, 0
    points, lat, lng = [], 0, 0
    for dlat, dlng in zip(values[::2], values[1::2], strict=True):
        lat += dlat
        lng += dlng
        points.append((lat / 1e5, lng / 1e5))
    return points
