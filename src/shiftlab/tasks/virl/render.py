"""Offline street views of a procedural Scene: perspective tiles, the 2x2 observation grid and panoramas.

One column raycaster serves every camera. Each image column is a horizontal ray at a compass bearing; it is
intersected with the facades near the camera and the few nearest hits become wall layers. Each image row is a
tangent of elevation, so a wall hit at horizontal distance t covers the rows whose ray height
`EYE_HEIGHT + t * tan(elevation)` lies between the street and the top of the facade. Rows no wall covers show
the sky gradient above the horizon and the ground raster below it. Shop signs are textures mapped onto their
facade with exact perspective: the ray's parameter along the sign gives the texture column and the ray's
height at the sign the texture row, so text stays straight and, at street distances, readable.

Conventions (world.py builds Scenes against these):
- World: metres, x east, y north; a compass bearing b (degrees clockwise from north) is (sin b, cos b).
- Perspective: eye EYE_HEIGHT above the street, pitch 0, horizon between rows size/2 - 1 and size/2; column u
  looks along heading + atan((u + 0.5 - size/2) / f) with f = size / (2 tan(fov/2)).
- A Sign is a flat board centred horizontally at (x, y) on its facade, its face towards `facing`. `elevation`
  is the height of its LOWER edge above the street, so it spans [elevation, elevation + height]. It is drawn
  when it is within SIGN_RANGE metres and the camera is in front of it (the bearing from the sign to the
  camera within 90 degrees of `facing`); its text reads left to right for someone facing it. Walls nearer than
  the sign hide it. With `CityStyle.uppercase_signs` the text is shown in capitals.
- Facades are two-sided; beyond FACADE_RANGE metres nothing is drawn, which the distance haze hides.
- Panorama: see render_panorama.

Whatever is derived from a Scene (facade arrays, spatial grid, ground raster) is cached by the Scene's
identity, not its value: hashing thousands of facades per call would cost more than rendering. Scenes are
frozen, so the same inputs always give the same pixels.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shiftlab.tasks.virl.caching import LRU, IdentityKey, per_object
from shiftlab.tasks.virl.scene import LAYOUTS, RGB, CityStyle, Scene, assemble_grid, view_headings
from shiftlab.tasks.virl.spatial import SpatialHash

EYE_HEIGHT = 2.5
FACADE_RANGE = 120.0
SIGN_RANGE = 40.0

_LAYERS = 3  # nearest wall hits per column: enough to show a tall building above a low one in front
_GRID_CELL = 64.0
_FOG_NEAR, _FOG_FAR, _FOG_MAX = 12.0, 130.0, 0.88
_FOG_LEVELS = 48
_SIGN_OFFSET = 0.05  # boards stand this far proud of their wall, so the wall never wins the depth test
_SIGN_DEPTH_TOL = 0.3  # a sign centred slightly behind its own wall line still shows
_TEX_TEXELS = (64, 128)  # board heights in texels: the finer one for views with long focal lengths
_TEX_MAX_WIDTH = 2048
_MAX_TAPS = 2
_MAX_STRETCH = 1.25  # letters may widen this much to fill a long board: more pixels per letter

# Facade pattern, in metres.
_FLOOR = 3.2
_UPPER_START = 4.6  # leaves a fascia band above the shop front where signs hang
_WINDOW_BAND = 1.55
_STOREFRONT = (0.3, 2.7)
_STOREFRONT_PITCH = 4.6
_CORNICE = 0.35
_ROOF_MARGIN = 0.7
_EDGE = 0.25
_LIGHT_BEARING = 120.0
_BAND_STEPS = 16  # per metre: resolution of the window-band lookup table
_SKY_LEVELS = 256
_WINDOW_TINTS = np.array([(52, 64, 82), (66, 78, 92), (88, 100, 116), (60, 70, 66)], np.float32)

_SIDEWALK, _ROAD, _CURB, _LINE = 0, 1, 2, 3
_GROUND_RES = 0.25
_GROUND_MAX_CELLS = 16_000_000
_ROAD_RES = 1.0
_ROAD_MAX_CELLS = 4_000_000
_KERB = 0.3
_CENTRE_LINE_MIN_WIDTH = 6.0
_DASH = (3.0, 6.0)  # painted length, period
_LINE_HALF_WIDTH = 0.12
_GROUND_MARGIN = 30.0
_SIDEWALK_STRIP = 3.0


@dataclass(frozen=True, eq=False)
class _Walls:
    """Facades as arrays (start point, extent vector, look) plus a grid of midpoints for range queries."""

    ax: np.ndarray
    ay: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    length: np.ndarray
    height: np.ndarray
    rgb: np.ndarray
    window_rgb: np.ndarray
    pitch: np.ndarray
    grid: SpatialHash  # of facade midpoints
    reach: float


@dataclass(frozen=True, eq=False)
class _Signs:
    """Sign boards as segments running left to right for a viewer in front, already offset off the wall."""

    cx: np.ndarray
    cy: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    width: np.ndarray
    height: np.ndarray
    bottom: np.ndarray


@dataclass(frozen=True, eq=False)
class _Ground:
    """The street surface on a raster whose cell (j, i) has its corner at (x0 + i*res, y0 + j*res).

    Without `roads`, cells hold surface labels. With them, a cell holds k = 1 + the index of the road nearest
    to it (0: none) and `roads` holds float32 columns indexed by k, all in cell units for a point (i, j):
    a, b, c with |a i + b j + c| its distance from the road's centre line, the half width, and ux, uy, d with
    ux i + uy j + d its distance along the road (d is NaN for roads without a centre line)."""

    cells: np.ndarray
    x0: float
    y0: float
    res: float
    roads: tuple[np.ndarray, ...] | None = None


@dataclass(frozen=True, eq=False)
class _Index:
    """Everything the renderer derives from one Scene."""

    walls: _Walls
    signs: _Signs
    ground: _Ground


@per_object
def _scene_index(scene: Scene) -> _Index:
    """The Scene's index, built on first use and dropped when the Scene is garbage-collected."""
    return _Index(_build_walls(scene), _build_signs(scene), _build_ground(scene))


def _mix_hash(*columns: np.ndarray) -> np.ndarray:
    """A stable integer per facade from its coordinates, for deterministic variety without an RNG."""
    h = np.full(columns[0].shape, 2166136261, np.uint64)
    for col in columns:
        h = (h ^ np.round(col * 10).astype(np.int64).astype(np.uint64)) * np.uint64(16777619)
        h &= np.uint64(0xFFFFFFFF)
    return h ^ (h >> np.uint64(13))


def _build_walls(scene: Scene) -> _Walls:
    fac = scene.facades
    x0 = np.array([f.x0 for f in fac], np.float64)
    y0 = np.array([f.y0 for f in fac], np.float64)
    x1 = np.array([f.x1 for f in fac], np.float64)
    y1 = np.array([f.y1 for f in fac], np.float64)
    ex, ey = x1 - x0, y1 - y0
    length = np.hypot(ex, ey)
    normal_bearing = np.degrees(np.arctan2(ex, ey)) + 90.0
    shade = 0.7 + 0.3 * np.abs(np.cos(np.radians(normal_bearing - _LIGHT_BEARING)))
    base = np.array([f.color for f in fac], np.float32).reshape(-1, 3)
    mix = _mix_hash(x0, y0, x1, y1)
    return _Walls(
        ax=x0,
        ay=y0,
        ex=ex,
        ey=ey,
        length=length,
        height=np.array([f.height for f in fac], np.float64),
        rgb=base * shade[:, None].astype(np.float32),
        window_rgb=_WINDOW_TINTS[(mix % np.uint64(len(_WINDOW_TINTS))).astype(np.int64)],
        pitch=2.3 + 0.2 * ((mix >> np.uint64(8)) % np.uint64(5)).astype(np.float64),
        grid=SpatialHash(_GRID_CELL, zip(((x0 + x1) / 2).tolist(), ((y0 + y1) / 2).tolist(), strict=True)),
        reach=float(length.max() / 2) if len(fac) else 0.0,
    )


def _build_signs(scene: Scene) -> _Signs:
    signs = scene.signs
    facing = np.radians(np.array([s.facing for s in signs], np.float64))
    nx, ny = np.sin(facing), np.cos(facing)
    rx, ry = -ny, nx  # the viewer's right when facing the board
    width = np.array([s.width for s in signs], np.float64)
    cx = np.array([s.x for s in signs], np.float64) + _SIGN_OFFSET * nx
    cy = np.array([s.y for s in signs], np.float64) + _SIGN_OFFSET * ny
    return _Signs(
        cx=cx,
        cy=cy,
        nx=nx,
        ny=ny,
        ax=cx - width / 2 * rx,
        ay=cy - width / 2 * ry,
        ex=width * rx,
        ey=width * ry,
        width=width,
        height=np.array([s.height for s in signs], np.float64),
        bottom=np.array([s.elevation for s in signs], np.float64),
    )


def _near(
    ground: _Ground, seg: tuple[float, float, float, float], reach: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """The raster window around a segment, with each cell's distance along the segment from its start and its
    distance to the segment, both in metres; None when the window is empty."""
    x0, y0, x1, y1 = seg
    res, (ny, nx) = ground.res, ground.cells.shape
    i0 = max(int((min(x0, x1) - reach - ground.x0) / res), 0)
    i1 = min(int((max(x0, x1) + reach - ground.x0) / res) + 1, nx)
    j0 = max(int((min(y0, y1) - reach - ground.y0) / res), 0)
    j1 = min(int((max(y0, y1) + reach - ground.y0) / res) + 1, ny)
    if i0 >= i1 or j0 >= j1:
        return None
    cx = (ground.x0 + (np.arange(i0, i1) + 0.5) * res - x0)[None, :]
    cy = (ground.y0 + (np.arange(j0, j1) + 0.5) * res - y0)[:, None]
    length = math.hypot(x1 - x0, y1 - y0) or 1e-9
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    along = cx * ux + cy * uy
    beyond = np.maximum(np.maximum(-along, along - length), 0.0)
    return (slice(j0, j1), slice(i0, i1)), along, np.hypot(cx * uy - cy * ux, beyond)


def _raster(scene: Scene, res: float, max_cells: int, fill: int, dtype: type) -> _Ground:
    pts = np.array(
        [(f.x0, f.y0, f.x1, f.y1) for f in scene.facades] + [(r.x0, r.y0, r.x1, r.y1) for r in scene.roads],
        np.float64,
    ).reshape(-1, 2)
    lo = pts.min(axis=0) - _GROUND_MARGIN
    hi = pts.max(axis=0) + _GROUND_MARGIN
    res = max(res, math.sqrt(float(np.prod(hi - lo)) / max_cells))
    nx, ny = (np.ceil((hi - lo) / res).astype(int) + 1).tolist()
    return _Ground(np.full((ny, nx), fill, dtype), float(lo[0]), float(lo[1]), res)


def _build_ground(scene: Scene) -> _Ground:
    """What the street surface looks like, prepared once per scene.

    With roads, everything off the roads is pavement. A coarse raster remembers the nearest road around each
    cell, and the renderer measures every ground pixel against that road exactly, so kerbs and centre dashes
    stay straight at any angle. A scene without roads is all asphalt but for a strip of pavement along every
    facade, rasterised finely."""
    if not scene.facades and not scene.roads:
        return _Ground(np.full((1, 1), _ROAD, np.uint8), 0.0, 0.0, 1e9)
    if not scene.roads:
        ground = _raster(scene, _GROUND_RES, _GROUND_MAX_CELLS, _ROAD, np.uint8)
        for f in scene.facades:
            if (near := _near(ground, (f.x0, f.y0, f.x1, f.y1), _SIDEWALK_STRIP)) is not None:
                window, _, dist = near
                ground.cells[window][dist <= _SIDEWALK_STRIP] = _SIDEWALK
        return ground
    ground = _raster(scene, _ROAD_RES, _ROAD_MAX_CELLS, 0, np.int32)
    best = np.full(ground.cells.shape, np.inf, np.float32)
    table = np.zeros((len(scene.roads) + 1, 7), np.float64)
    table[0] = (0.0, 0.0, np.inf, 0.0, 0.0, 0.0, np.nan)  # "no road": every point is infinitely far from it
    for k, road in enumerate(scene.roads, start=1):
        length = math.hypot(road.x1 - road.x0, road.y1 - road.y0) or 1e-9
        ux, uy = (road.x1 - road.x0) / length, (road.y1 - road.y0) / length
        ox, oy = (ground.x0 - road.x0) / ground.res, (ground.y0 - road.y0) / ground.res
        lined = road.width >= _CENTRE_LINE_MIN_WIDTH
        table[k] = (uy, -ux, uy * ox - ux * oy, road.width / 2 / ground.res, ux, uy, ux * ox + uy * oy)
        if not lined:
            table[k, 6] = np.nan  # no centre line: the dash test below never passes
        reach = road.width / 2 + _KERB + 0.75 * ground.res
        if (near := _near(ground, (road.x0, road.y0, road.x1, road.y1), reach)) is not None:
            window, _, dist = near
            closer = (dist <= reach) & (dist < best[window])
            best[window][closer] = dist[closer]
            ground.cells[window][closer] = k
    columns = tuple(np.ascontiguousarray(col, np.float32) for col in table.T)
    return _Ground(ground.cells, ground.x0, ground.y0, ground.res, columns)


def _fog(distance: np.ndarray) -> np.ndarray:
    return np.clip((distance - _FOG_NEAR) / (_FOG_FAR - _FOG_NEAR), 0.0, 1.0) * _FOG_MAX


def _window_bands() -> tuple[np.ndarray, np.ndarray]:
    """Per 1/16 m of height: the glass band it is in (bit 1 upper-floor window, bit 2 shop front) and the top
    of that upper-floor window, so that under the cornice a window is drawn whole or not at all."""
    metres = (np.arange(512 * _BAND_STEPS) + 0.5) / _BAND_STEPS
    floor = np.floor((metres - _UPPER_START) / _FLOOR)
    upper = (metres >= _UPPER_START) & (metres - _UPPER_START - floor * _FLOOR < _WINDOW_BAND)
    shop = (metres >= _STOREFRONT[0]) & (metres <= _STOREFRONT[1])
    top = np.where(upper, _UPPER_START + floor * _FLOOR + _WINDOW_BAND, 0.0).astype(np.float32)
    return upper.astype(np.uint8) | (shop.astype(np.uint8) << 1), top


_BANDS, _BAND_TOPS = _window_bands()


@lru_cache(maxsize=64)
def _style_palettes(style: CityStyle) -> tuple[np.ndarray, np.ndarray]:
    """Sky shades (horizon to zenith) and ground colours per (label, haze level) for one style."""
    top, horizon = np.array(style.sky_top, np.float32), np.array(style.sky_horizon, np.float32)
    sky = horizon + (np.arange(_SKY_LEVELS, dtype=np.float32) / (_SKY_LEVELS - 1))[:, None] * (top - horizon)
    sidewalk = np.array(style.sidewalk, np.float32)
    base = np.stack(
        [sidewalk, np.array(style.road, np.float32), sidewalk * 0.72, np.array(style.center_line, np.float32)]
    )
    fog = (np.arange(_FOG_LEVELS, dtype=np.float32) / (_FOG_LEVELS - 1) * _FOG_MAX)[None, :, None]
    ground = (base[:, None, :] * (1 - fog) + horizon * fog).reshape(-1, 3)
    return np.round(sky).astype(np.uint8), np.round(ground).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class _Camera:
    """Per column: bearing offset and its cosine; per row: tangent of elevation; and one pixel's angle."""

    offsets: np.ndarray
    cos_off: np.ndarray
    rows: np.ndarray
    pixel_angle: float


@lru_cache(maxsize=32)
def _perspective_camera(size: int, fov: float) -> _Camera:
    f = size / (2 * math.tan(math.radians(fov) / 2))
    centred = np.arange(size, dtype=np.float64) + 0.5 - size / 2
    off = np.arctan(centred / f)
    return _Camera(
        offsets=np.degrees(off),
        cos_off=np.cos(off),
        rows=-centred / f,
        pixel_angle=1.0 / f,
    )


@lru_cache(maxsize=8)
def _panorama_camera(width: int, height: int) -> _Camera:
    lat = np.pi * (np.arange(height, dtype=np.float64) / (height - 1) - 0.5)
    lat = np.clip(lat, -np.pi / 2 + 1e-3, np.pi / 2 - 1e-3)
    return _Camera(
        offsets=panorama_headings(width),
        cos_off=np.ones(width),
        rows=-np.tan(lat),
        pixel_angle=max(2 * np.pi / (width - 1), np.pi / (height - 1)),
    )


@lru_cache(maxsize=64)
def _sky_levels(camera: _Camera) -> np.ndarray:
    """Sky shade index per pixel, from the tangent of its elevation: paler towards the horizon."""
    slope = np.clip(camera.rows[:, None] * camera.cos_off[None, :], 0.0, 1.0) ** 0.7
    levels = np.round(slope * (_SKY_LEVELS - 1)).astype(np.int32)
    levels.flags.writeable = False
    return levels


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=2048)
def _glyph(ch: str, size: int) -> tuple[np.ndarray, int, float]:
    """One character, emboldened, as a coverage mask on a line box shared by all glyphs of this size (with
    headroom for accents), its offset from the pen and the pen's advance. Rasterising whole names is slow on
    a small CPU, so each glyph is rasterised once and names are assembled from the masks."""
    font = _font(size)
    stroke = max(1, size // 28)
    ascent, descent = font.getmetrics()
    headroom = size // 4 + stroke
    left, _, right, _ = font.getbbox(ch, stroke_width=stroke)
    canvas = Image.new("L", (max(right - left, 1), headroom + ascent + descent + stroke), 0)
    draw = ImageDraw.Draw(canvas)
    draw.text((-left, headroom), ch, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return np.asarray(canvas), left, font.getlength(ch)


def _rendered(ch: str) -> bytes:
    canvas = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(canvas).text((8, 4), ch, fill=255, font=_font(32))
    return canvas.tobytes()


@lru_cache(maxsize=1024)
def _printable(ch: str) -> str:
    """`ch`, or its unaccented letters when Pillow's bundled font (ASCII only) would draw a box instead."""
    missing = _rendered("\ue000")
    if ch.isspace() or _rendered(ch) != missing:
        return ch
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and base != ch and all(_rendered(c) != missing for c in base):
        return base
    return ch


def _line_width(text: str, size: int) -> float:
    return sum(_glyph(ch, size)[2] for ch in text) + size * 0.1


def _line_mask(text: str, size: int) -> np.ndarray:
    """A line of text from cached glyphs: pen advances without kerning, which at sign sizes nobody sees."""
    glyphs = [_glyph(ch, size) for ch in text]
    pens = np.concatenate([[0.0], np.cumsum([advance for _, _, advance in glyphs])])
    starts = [round(pen + offset) for pen, (_, offset, _) in zip(pens[:-1], glyphs, strict=True)]
    origin = min(starts)
    width = max(x + mask.shape[1] for x, (mask, _, _) in zip(starts, glyphs, strict=True)) - origin
    line = np.zeros((glyphs[0][0].shape[0], width), np.uint8)
    for x, (mask, _, _) in zip(starts, glyphs, strict=True):
        window = line[:, x - origin : x - origin + mask.shape[1]]
        np.maximum(window, mask, out=window)
    return line


def _layout_lines(text: str, avail_w: float, avail_h: float, size: int) -> list[str]:
    """One line, or two when the board is tall enough that splitting at a space makes the letters bigger."""
    options = [[text]] + [[text[:i], text[i + 1 :]] for i, ch in enumerate(text) if ch == " "]

    def scale(lines: list[str]) -> float:
        width = max(_line_width(line, size) for line in lines)
        return min(avail_w / max(width, 1.0), avail_h / (size * (1 + 1.15 * (len(lines) - 1))))

    return max(options, key=scale)


@lru_cache(maxsize=512)
def _sign_texture(
    text: str, background: RGB, foreground: RGB, aspect: float, texels: int
) -> tuple[np.ndarray, ...]:
    """A sign board `texels` high as a mip pyramid (uint8 RGB, finest first), drawn once per text, colours
    and shape. The text fills the board: letters are as tall as the board allows and may widen a little
    (up to _MAX_STRETCH) to use a long board, because pixels per letter are what make a name readable."""
    text = "".join(_printable(ch) for ch in text)
    tw = int(np.clip(round(texels * aspect), 8, _TEX_MAX_WIDTH))
    border = max(1, round(texels * 0.035))
    pad = round(texels * 0.07)
    avail_w, avail_h = tw - 2 * pad, texels - 2 * pad
    lines = [_line_mask(line, texels) for line in _layout_lines(text, avail_w, avail_h, texels) if line]
    board = Image.new("RGB", (tw, texels), background)
    if lines:
        pitch = round(texels * 1.15)
        block = np.zeros(
            (pitch * (len(lines) - 1) + lines[0].shape[0], max(m.shape[1] for m in lines)), np.uint8
        )
        for n, mask in enumerate(lines):
            x = (block.shape[1] - mask.shape[1]) // 2
            window = block[n * pitch : n * pitch + mask.shape[0], x : x + mask.shape[1]]
            np.maximum(window, mask, out=window)
        rows, cols = np.nonzero(block.any(axis=1))[0], np.nonzero(block.any(axis=0))[0]
        if rows.size:
            ink = Image.fromarray(block[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
            ky = min(avail_w / ink.width, avail_h / ink.height)
            kx = min(avail_w / ink.width, _MAX_STRETCH * ky)
            w, h = max(1, round(ink.width * kx)), max(1, round(ink.height * ky))
            x, y = (tw - w) // 2, (texels - h) // 2
            board.paste(
                foreground,
                (x, y, x + w, y + h),
                ink.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0),
            )
    frame = tuple(round(c * 0.55) for c in background)
    ImageDraw.Draw(board).rectangle((0, 0, tw - 1, texels - 1), outline=frame, width=border)
    levels = [np.asarray(board)]
    while min(board.size) >= 6:
        board = board.reduce(2)
        levels.append(np.asarray(board))
    return tuple(levels)


def _nearby_walls(walls: _Walls, px: float, py: float) -> np.ndarray:
    reach = FACADE_RANGE + walls.reach
    ids = np.sort(np.array(walls.grid.overlapping(px, py, reach), np.int64))
    wx, wy = px - walls.ax[ids], py - walls.ay[ids]
    ex, ey = walls.ex[ids], walls.ey[ids]
    s = np.clip((wx * ex + wy * ey) / np.maximum(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
    return ids[np.hypot(wx - s * ex, wy - s * ey) <= FACADE_RANGE]


def _in_view(
    walls: _Walls, ids: np.ndarray, px: float, py: float, heading: float, half_fov: float
) -> np.ndarray:
    """The facades that may cross a view's wedge: a segment whose two ends lie beyond the same edge of the
    wedge cannot, which leaves about a quarter of the nearby facades for a 90-degree view."""
    if half_fov > 85.0:
        return ids
    h = math.radians(heading)
    fx, fy = math.sin(h), math.cos(h)
    slope = math.tan(math.radians(half_fov + 1.0))
    outside_left = np.ones(ids.shape, bool)
    outside_right = np.ones(ids.shape, bool)
    for end in (0.0, 1.0):
        x = walls.ax[ids] + end * walls.ex[ids] - px
        y = walls.ay[ids] + end * walls.ey[ids] - py
        forward, right = x * fx + y * fy, x * fy - y * fx
        outside_left &= right < -forward * slope
        outside_right &= right > forward * slope
    return ids[~(outside_left | outside_right)]


def _intersect(
    dx: np.ndarray, dy: np.ndarray, ax: np.ndarray, ay: np.ndarray, ex: np.ndarray, ey: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rays from the origin along (dx, dy), shape (C,), against camera-relative segments a + s*e, shape (N,).

    Returns (t, s), both (C, N): distance along the ray (inf on a miss) and position along the segment."""
    denom = dx[:, None] * ey[None, :] - dy[:, None] * ex[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ax * ey - ay * ex)[None, :] / denom
        s = (dy[:, None] * ax[None, :] - dx[:, None] * ay[None, :]) / denom
    t[~((t > 1e-3) & (s >= 0) & (s <= 1))] = np.inf
    return t, s


def _row_span(rows_desc: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last row whose tangent lies in [lo, hi], given rows sorted by decreasing tangent."""
    top = np.searchsorted(rows_desc, -hi, side="left")
    bottom = np.searchsorted(rows_desc, -lo, side="right")
    return top, bottom


def _render(
    scene: Scene, px: float, py: float, bearings: np.ndarray, cam: _Camera, heading: float | None = None
) -> np.ndarray:
    """Raycast a set of columns. Every pixel first gets an index into a small palette (sky shades, hazed
    ground colours, per-column wall colours); one gather makes the image, then signs are painted on top."""
    index = _scene_index(scene)
    style = scene.style
    walls, ncol, nrow = index.walls, bearings.shape[0], cam.rows.shape[0]
    rad = np.radians(bearings)
    dx, dy = np.sin(rad), np.cos(rad)
    cols = np.arange(ncol, dtype=np.int32)
    none = _LAYERS * ncol
    sky, ground = _style_palettes(style)
    wall_base = len(sky) + len(ground)

    colour = np.empty((nrow, ncol), np.int32)
    first = _ground_rays(cam)[0]
    colour[:first] = _sky_levels(cam)[:first]
    colour[first:] = _ground_colours(index.ground, px, py, dx, dy, cam) + len(sky)

    dist = np.full(none + 1, np.inf, np.float32)
    depth = np.zeros(none + 1, np.float32)
    roof = np.zeros(none + 1, np.float32)
    bays = np.zeros(none + 1, np.uint8)
    palette = np.zeros((none + 1, 3, 3), np.float32)
    pixel = np.full((nrow, ncol), none, np.int32)

    ids = _nearby_walls(walls, px, py)
    if heading is not None:
        ids = _in_view(walls, ids, px, py, heading, float(np.abs(cam.offsets).max()))
    layers = []
    if ids.size:
        t, s = _intersect(dx, dy, walls.ax[ids] - px, walls.ay[ids] - py, walls.ex[ids], walls.ey[ids])
        for _ in range(_LAYERS):
            pick = np.argmin(t, axis=1)
            tk = t[cols, pick]
            hit = np.isfinite(tk)
            if not hit.any():
                break
            layers.append((ids[pick], tk, np.where(hit, s[cols, pick], 0.0), hit))
            t[cols, pick] = np.inf
    row_idx = np.arange(nrow, dtype=np.int32)[:, None]
    covered_from = np.full(ncol, nrow, np.int32)  # first row hidden by a nearer layer's top edge
    haze = np.array(style.sky_horizon, np.float32)
    for k, (fid, tk, sk, hit) in enumerate(layers):
        sl = slice(k * ncol, (k + 1) * ncol)
        h = walls.height[fid]
        tz = np.where(hit, tk * cam.cos_off, 1.0)
        top, bottom = _row_span(-cam.rows, -EYE_HEIGHT / tz, (h - EYE_HEIGHT) / tz)
        top = np.where(hit, top, nrow).astype(np.int32)
        bottom = np.minimum(bottom, covered_from).astype(np.int32)
        covered_from = np.minimum(covered_from, top)
        if not (top < bottom).any():
            continue
        pixel = np.where((row_idx >= top) & (row_idx < bottom), cols + k * ncol, pixel)
        dist[sl] = np.where(hit, tk, np.inf)
        depth[sl] = np.where(hit, tz, 0.0)
        roof[sl] = h
        bays[sl], palette[sl] = _wall_columns(walls, fid, sk * walls.length[fid], _fog(tk), haze)

    if layers:
        metres = EYE_HEIGHT + cam.rows.astype(np.float32)[:, None] * np.take(depth, pixel)
        step = np.clip((metres * _BAND_STEPS).astype(np.int32), 0, len(_BANDS) - 1)
        bits = np.take(_BANDS, step) & np.take(bays, pixel)
        roof_px = np.take(roof, pixel)
        whole = np.take(_BAND_TOPS, step) <= roof_px - _ROOF_MARGIN
        window = ((bits & 2) > 0) | (((bits & 1) > 0) & whole)
        kind = np.where(metres >= roof_px - _CORNICE, 2, window.astype(np.int32))
        colour = np.where(pixel < none, pixel * 3 + kind + wall_base, colour)
    table = np.concatenate([sky, ground, np.round(palette).astype(np.uint8).reshape(-1, 3)])
    image = np.take(table, colour, axis=0)
    _paint_signs(image, index.signs, scene, px, py, dx, dy, cam, pixel, dist)
    return image


def _wall_columns(
    walls: _Walls, fid: np.ndarray, u: np.ndarray, fog: np.ndarray, haze: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per hit column: the window bays it crosses (bit 1 upper floors, bit 2 shop front) and its hazed
    colours for plain wall, glass and cornice."""
    length = walls.length[fid]

    def glass(pitch: np.ndarray | float, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
        """Columns inside a pane [lo, hi] of a bay repeated every `pitch` metres and centred on the facade;
        panes that would not fit whole on the facade are left out."""
        bay = np.mod(u - np.mod(length, pitch) / 2, pitch)
        start = u - bay
        return (bay > lo) & (bay < hi) & (start + lo > 0.3) & (start + hi < length - 0.3)

    pitch = walls.pitch[fid]
    upper = glass(pitch, 0.3 * pitch, 0.78 * pitch)
    store = glass(_STOREFRONT_PITCH, 0.6, _STOREFRONT_PITCH - 0.6)
    bays = upper.astype(np.uint8) | (store.astype(np.uint8) << 1)
    edge = np.where((u < _EDGE) | (u > length - _EDGE), 0.72, 1.0)[:, None].astype(np.float32)
    fog = fog[:, None].astype(np.float32)
    wall = walls.rgb[fid] * edge
    kinds = np.stack([wall, walls.window_rgb[fid] * edge, wall * 0.7], axis=1)
    return bays, kinds * (1 - fog[:, None]) + haze * fog[:, None]


@lru_cache(maxsize=32)
def _ground_rays(cam: _Camera) -> tuple[int, np.ndarray, np.ndarray]:
    """First row below the horizon, and per pixel below it: the street distance seen and its haze level."""
    first = int(np.searchsorted(-cam.rows, 0.0, side="right"))
    reach = (EYE_HEIGHT / -cam.rows[first:])[:, None] / cam.cos_off[None, :]
    scale = (_FOG_LEVELS - 1) / (_FOG_FAR - _FOG_NEAR)
    level = np.clip((reach - _FOG_NEAR) * scale, 0, _FOG_LEVELS - 1).astype(np.int32)
    reach, level = reach.astype(np.float32), level
    reach.flags.writeable = level.flags.writeable = False
    return first, reach, level


def _ground_colours(
    ground: _Ground, px: float, py: float, dx: np.ndarray, dy: np.ndarray, cam: _Camera
) -> np.ndarray:
    """Palette index (label, haze level) of the street point seen by each pixel below the horizon."""
    _, reach, level = _ground_rays(cam)
    inv = 1.0 / ground.res
    gi = reach * (dx * inv).astype(np.float32) + np.float32((px - ground.x0) * inv)
    gj = reach * (dy * inv).astype(np.float32) + np.float32((py - ground.y0) * inv)
    ny, nx = ground.cells.shape
    cell = np.clip(gj, 0, ny - 1).astype(np.int32) * nx + np.clip(gi, 0, nx - 1).astype(np.int32)
    found = np.take(ground.cells.ravel(), cell)
    if ground.roads is None:
        return found.astype(np.int32) * _FOG_LEVELS + level
    a, b, c, half, ux, uy, d = ground.roads
    across = np.abs(gi * np.take(a, found) + gj * np.take(b, found) + np.take(c, found))
    half = np.take(half, found)
    label = np.where(across <= half, _ROAD, np.where(across <= half + _KERB * inv, _CURB, _SIDEWALK))
    near_line = np.nonzero(across <= _LINE_HALF_WIDTH * inv)
    if near_line[0].size:
        k = found[near_line]
        along = (gi[near_line] * ux[k] + gj[near_line] * uy[k] + d[k]) * ground.res
        painted = np.mod(along, _DASH[1]) < _DASH[0]  # False where d is NaN: no centre line
        label[near_line] = np.where(painted, _LINE, label[near_line])
    return label * _FOG_LEVELS + level


def _paint_signs(
    image: np.ndarray,
    signs: _Signs,
    scene: Scene,
    px: float,
    py: float,
    dx: np.ndarray,
    dy: np.ndarray,
    cam: _Camera,
    pixel: np.ndarray,
    dist: np.ndarray,
) -> None:
    """Texture-map each sign in front of the camera onto the columns where it is the nearest sign."""
    if not signs.cx.size:
        return
    to_x, to_y = px - signs.cx, py - signs.cy
    reach = np.hypot(to_x, to_y)
    facing = (to_x * signs.nx + to_y * signs.ny) > 0
    cand = np.nonzero(facing & (reach <= SIGN_RANGE))[0]
    if not cand.size:
        return
    t, s = _intersect(dx, dy, signs.ax[cand] - px, signs.ay[cand] - py, signs.ex[cand], signs.ey[cand])
    pick = np.argmin(t, axis=1)
    ncol = dx.shape[0]
    cols = np.arange(ncol)
    ts, us = t[cols, pick], s[cols, pick]
    haze = np.array(scene.style.sky_horizon, np.float32)
    upper = scene.style.uppercase_signs
    texels = _TEX_TEXELS[0] if cam.pixel_angle >= 1 / 320 else _TEX_TEXELS[1]
    for j in np.unique(pick[np.isfinite(ts)]).tolist():
        n = int(cand[j])
        sign = scene.signs[n]
        on = np.nonzero((pick == j) & np.isfinite(ts))[0]
        tz = ts[on] * cam.cos_off[on]
        bottom, height = signs.bottom[n], signs.height[n]
        top_r, bot_r = _row_span(-cam.rows, (bottom - EYE_HEIGHT) / tz, (bottom + height - EYE_HEIGHT) / tz)
        r0, r1 = int(top_r.min()), int(bot_r.max())
        if r0 >= r1:
            continue
        metres = EYE_HEIGHT + cam.rows[r0:r1, None] * tz[None, :]
        block = pixel[r0:r1][:, on]
        show = (
            (metres >= bottom)
            & (metres < bottom + height)
            & (ts[on][None, :] <= dist[block] + _SIGN_DEPTH_TOL)
        )
        if not show.any():
            continue
        text = sign.text.upper() if upper else sign.text
        aspect = round(signs.width[n] / height, 2)
        levels = _sign_texture(text, sign.background, sign.foreground, aspect, texels)
        incidence = max(float((to_x[n] * signs.nx[n] + to_y[n] * signs.ny[n]) / reach[n]), 0.05)
        down = reach[n] * cam.pixel_angle * texels / height  # texels per pixel down the board
        across = down / incidence  # and along it, more when seen at a slant
        level = levels[min(int(math.log2(max(down, across / _MAX_TAPS, 1.0))), len(levels) - 1)]
        rows, at = np.nonzero(show)
        v = np.clip((bottom + height - metres[rows, at]) / height, 0.0, 1.0).astype(np.float32)
        footprint = reach[n] * cam.pixel_angle / (signs.width[n] * incidence)
        rgb = _sample(level, us[on][at].astype(np.float32), v, footprint)
        fog = _fog(ts[on][at])[:, None].astype(np.float32)
        image[r0 + rows, on[at]] = np.round(rgb * (1 - fog) + haze * fog).astype(np.uint8)


def _sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray, footprint: float) -> np.ndarray:
    """Bilinear texture lookup at (u, v) in [0, 1], averaged over up to _MAX_TAPS taps spread across a
    column's footprint in u: (n,) coordinates give (n, 3) float32 colours.

    The mip level follows the board's height as far as it can, so a board seen at a slant would alias along
    its width; the extra taps (anisotropic filtering) keep slanted text smooth instead of blurring it all.
    """
    taps = int(min(max(math.ceil(footprint * tex.shape[1]), 1), _MAX_TAPS))
    if taps == 1:
        return _bilinear(tex, u, v)
    offsets = ((np.arange(taps) + 0.5) / taps - 0.5) * footprint
    return sum(_bilinear(tex, u + np.float32(o), v) for o in offsets) / np.float32(taps)


def _bilinear(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = tex.shape[:2]
    flat = tex.reshape(-1, 3)
    x = np.clip(u * w - 0.5, 0, w - 1)
    y = np.clip(v * h - 0.5, 0, h - 1)
    x0 = np.minimum(x.astype(np.int32), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.int32), max(h - 2, 0))
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    corner = y0 * np.int32(w) + x0
    right, down = np.int32(1 if w > 1 else 0), np.int32(w if h > 1 else 0)
    top = np.take(flat, corner, axis=0) * (1 - fx) + np.take(flat, corner + right, axis=0) * fx
    corner += down
    low = np.take(flat, corner, axis=0) * (1 - fx) + np.take(flat, corner + right, axis=0) * fx
    return top * (1 - fy) + low * fy


def _check_size(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def render_view(
    scene: Scene, x: float, y: float, heading: float, size: int = 256, fov: float = 90.0
) -> np.ndarray:
    """The (size, size, 3) uint8 street view from (x, y) looking along compass `heading`, pitch 0."""
    _check_size("size", size, 2)
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov}")
    cam = _perspective_camera(size, float(fov))
    return _render(scene, float(x), float(y), float(heading) + cam.offsets, cam, float(heading))


_GRID_CACHE_BYTES = 64 << 20  # about 80 grids of 256 px tiles, 3 of 1200 px ones
_GRID_CACHE = LRU(_GRID_CACHE_BYTES, cost=lambda grid: grid.nbytes)


def render_grid(
    scene: Scene, x: float, y: float, heading: float, size: int = 256, layout: str = "prompt"
) -> np.ndarray:
    """The 2x2 observation (assemble_grid of view_headings(heading, layout)) as a fresh array.

    Position and heading are rounded to 0.01 before rendering, so the result depends only on the cache key:
    repeated observations of one spot (retries, re-prompts) are a dictionary lookup and a copy.
    """
    _check_size("size", size, 2)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    rx, ry, rh = round(float(x), 2), round(float(y), 2), round(float(heading), 2)
    key = (IdentityKey(scene), rx, ry, rh, size, layout)
    grid = _GRID_CACHE.get(key)
    if grid is None:
        grid = assemble_grid([render_view(scene, rx, ry, h, size) for h in view_headings(rh, layout)])
        grid.flags.writeable = False
        _GRID_CACHE.put(key, grid)
    return grid.copy()


def clear_render_caches() -> None:
    """Forget cached grids and per-scene indexes (sign textures and cameras do not depend on a scene)."""
    _GRID_CACHE.clear()
    _scene_index.cache_clear()


def panorama_headings(width: int) -> np.ndarray:
    """Compass heading shown by each panorama column (rotation 0), the inverse of the real-data sampler."""
    lon = 2 * np.pi * (np.arange(width, dtype=np.float64) / (width - 1) - 0.5)
    return np.mod(np.degrees(lon) + 180.0, 360.0)


def render_panorama(scene: Scene, x: float, y: float, width: int = 1024, height: int = 512) -> np.ndarray:
    """An equirectangular (height, width, 3) uint8 panorama from (x, y), laid out like the real dataset's.

    Column X shows compass heading h = (degrees(2pi(X/(width-1) - 0.5)) + 180) mod 360, the real-data loader's
    inverse with metadata rotation 0: X = 0 and X = width-1 both look north, the centre looks south, and the
    heading grows to the right. Row Y has lat = pi(Y/(height-1) - 0.5) with lat measured DOWNWARDS, i.e. it
    looks at elevation -lat: row 0 is the zenith, the last row the nadir, the horizon is at Y = (height-1)/2.

    So the loader's equirect-to-perspective sampler reproduces render_view(scene, x, y, h, size, fov): take
    the pinhole ray (x_r right, y_r DOWN, z_r forward) of a view pixel, turn it about +y by
    theta = radians((h - 180) mod 360) to (x_r cos theta + z_r sin theta, y_r, z_r cos theta - x_r sin theta),
    read lon = atan2(x', z') and lat = asin(y') off the unit ray, and sample X = (lon/2pi + 0.5)(width-1),
    Y = (lat/pi + 0.5)(height-1). tests/test_virl_render.py checks exactly this round trip.
    """
    _check_size("width", width, 2)
    _check_size("height", height, 2)
    cam = _panorama_camera(width, height)
    return _render(scene, float(x), float(y), cam.offsets, cam)
