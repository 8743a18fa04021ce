"""Image observation of GeneralPoints: the dealt cards face up in one row on a green table.

Everything is drawn with Pillow shapes and Pillow's built-in font, so no card art or font file has to ship
with the package. Each face is drawn once per (rank, suit, card size) and cached, which makes a render a
handful of array copies: RL rollouts ask for an image at every step and must not wait on drawing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shiftlab.tasks.general_points.cards import RANKS, RED_SUITS, SUITS

TABLE_COLOR: tuple[int, int, int] = (22, 110, 58)
CARD_COLOR: tuple[int, int, int] = (250, 250, 246)
BORDER_COLOR: tuple[int, int, int] = (110, 110, 110)
RED_INK: tuple[int, int, int] = (200, 16, 32)
BLACK_INK: tuple[int, int, int] = (20, 20, 20)

MIN_RESOLUTION = 64
MAX_RESOLUTION = 4096
MAX_CARDS = 8

Box = tuple[int, int, int, int]
_FloatBox = tuple[float, float, float, float]

# Where things sit on a card, as fractions of its (width, height). The centre suit box is what suit_probe
# relies on, so the face drawing and the probe both read it from here.
_CORNER_RANK: _FloatBox = (0.04, 0.035, 0.25, 0.155)
_CORNER_SUIT: _FloatBox = (0.06, 0.175, 0.23, 0.275)
_CORNER_REGION = (0.27, 0.30)
_CENTRE_RANK: _FloatBox = (0.27, 0.13, 0.73, 0.43)
_CENTRE_SUIT: _FloatBox = (0.26, 0.49, 0.74, 0.84)
# A point (in the unit square of a suit symbol) that every suit shape covers with a wide margin.
_PROBE_UNIT = (0.5, 0.45)


def _ink(suit: str) -> tuple[int, int, int]:
    return RED_INK if suit in RED_SUITS else BLACK_INK


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ValueError(f"resolution must be an integer, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution}")


def _check_num_cards(num_cards: int) -> None:
    if isinstance(num_cards, bool) or not isinstance(num_cards, (int, np.integer)):
        raise ValueError(f"num_cards must be an integer, got {num_cards!r}")
    if not 1 <= num_cards <= MAX_CARDS:
        raise ValueError(f"the table shows 1 to {MAX_CARDS} cards, got {num_cards}")


@cache
def _layout(num_cards: int, resolution: int) -> tuple[Box, ...]:
    # The cap keeps one or two cards from filling the whole image.
    width = min(int(0.9 * resolution / num_cards), round(0.3 * resolution))
    height = round(width * 7 / 5)
    gap = max(1, min(round(0.08 * width), int(0.09 * resolution / max(1, num_cards - 1))))
    x = (resolution - (num_cards * width + (num_cards - 1) * gap)) // 2
    y = (resolution - height) // 2
    boxes = []
    for _ in range(num_cards):
        boxes.append((x, y, x + width, y + height))
        x += width + gap
    return tuple(boxes)


def card_boxes(num_cards: int, resolution: int) -> list[Box]:
    """(x0, y0, x1, y1) pixel box of each card, left to right, as render_table draws them (x1, y1 exclusive)."""
    _check_num_cards(num_cards)
    _check_resolution(resolution)
    return list(_layout(int(num_cards), int(resolution)))


def _centre_suit_square(width: float, height: float) -> tuple[float, float, float]:
    """(x0, y0, side) of the square the big suit symbol is drawn in, in the card's own pixels."""
    fx0, fy0, fx1, fy1 = _CENTRE_SUIT
    bw, bh = (fx1 - fx0) * width, (fy1 - fy0) * height
    side = min(bw, bh)
    return fx0 * width + (bw - side) / 2, fy0 * height + (bh - side) / 2, side


def suit_probe(box: Box) -> tuple[int, int]:
    """(x, y) of a pixel inside the big centre suit symbol of the card in `box`, filled with the suit colour.

    Lets tests and debugging tools check the suit colour without knowing how a face is laid out.
    """
    x0, y0, x1, y1 = box
    sx, sy, side = _centre_suit_square(x1 - x0, y1 - y0)
    return x0 + math.floor(sx + _PROBE_UNIT[0] * side), y0 + math.floor(sy + _PROBE_UNIT[1] * side)


# Suit shapes live in a unit square (y down) and are scaled onto the card.
_Point = tuple[float, float]


def _tangent_point(apex: _Point, centre: _Point, radius: float, outer_sign: float) -> _Point:
    """Point where a line from `apex` touches the circle, on the side away from the symbol's axis."""
    dx, dy = centre[0] - apex[0], centre[1] - apex[1]
    dist = math.hypot(dx, dy)
    alpha = math.asin(radius / dist) * outer_sign
    length = math.sqrt(dist * dist - radius * radius)
    base = math.atan2(dy, dx)
    return apex[0] + length * math.cos(base + alpha), apex[1] + length * math.sin(base + alpha)


def _lobes(
    apex: _Point, left: _Point, right: _Point, radius: float
) -> tuple[list[_Point], list[tuple[_Point, float]]]:
    """Polygon and circles of a heart-like body: two round lobes running into a point at `apex`."""
    # The sign picks the tangent on the outside of each lobe whether the apex is below (heart) or above (spade).
    sign = -1.0 if apex[1] > left[1] else 1.0
    polygon = [
        apex,
        _tangent_point(apex, left, radius, sign),
        left,
        right,
        _tangent_point(apex, right, radius, -sign),
    ]
    return polygon, [(left, radius), (right, radius)]


def _heart() -> tuple[list[list[_Point]], list[tuple[_Point, float]]]:
    polygon, circles = _lobes((0.5, 0.94), (0.28, 0.32), (0.72, 0.32), 0.23)
    return [polygon], circles


def _diamond() -> tuple[list[list[_Point]], list[tuple[_Point, float]]]:
    return [[(0.5, 0.02), (0.85, 0.5), (0.5, 0.98), (0.15, 0.5)]], []


def _spade() -> tuple[list[list[_Point]], list[tuple[_Point, float]]]:
    polygon, circles = _lobes((0.5, 0.02), (0.29, 0.56), (0.71, 0.56), 0.21)
    stem = [(0.5, 0.55), (0.63, 0.98), (0.37, 0.98)]
    return [polygon, stem], circles


def _club() -> tuple[list[list[_Point]], list[tuple[_Point, float]]]:
    radius = 0.205
    circles = [((0.5, 0.26), radius), ((0.27, 0.58), radius), ((0.73, 0.58), radius), ((0.5, 0.5), 0.16)]
    stem = [(0.5, 0.5), (0.63, 0.98), (0.37, 0.98)]
    return [stem], circles


_SHAPES: dict[str, Callable[[], tuple[list[list[_Point]], list[tuple[_Point, float]]]]] = {
    "H": _heart,
    "D": _diamond,
    "S": _spade,
    "C": _club,
}


def _draw_suit(draw: ImageDraw.ImageDraw, suit: str, x0: float, y0: float, side: float) -> None:
    polygons, circles = _SHAPES[suit]()
    fill = _ink(suit)
    for polygon in polygons:
        draw.polygon([(x0 + u * side, y0 + v * side) for u, v in polygon], fill=fill)
    for (u, v), r in circles:
        cx, cy, rr = x0 + u * side, y0 + v * side, r * side
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=fill)


@lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


_REFERENCE_SIZE = 200


def _draw_text(draw: ImageDraw.ImageDraw, text: str, box: _FloatBox, fill: tuple[int, int, int]) -> None:
    """Draw `text` as large as fits in `box`, centred on its ink, with a stroke to make it bold."""
    x0, y0, x1, y1 = box
    ref = _font(_REFERENCE_SIZE).getbbox(text, anchor="ls", stroke_width=round(0.05 * _REFERENCE_SIZE))
    scale = min((x1 - x0) / (ref[2] - ref[0]), (y1 - y0) / (ref[3] - ref[1]))
    size = max(1, int(_REFERENCE_SIZE * scale))
    stroke = round(0.05 * size)
    font = _font(size)
    left, top, right, bottom = font.getbbox(text, anchor="ls", stroke_width=stroke)
    x = (x0 + x1) / 2 - (left + right) / 2
    y = (y0 + y1) / 2 - (top + bottom) / 2
    draw.text((x, y), text, font=font, fill=fill, anchor="ls", stroke_width=stroke, stroke_fill=fill)


def _scaled(frac: _FloatBox, width: float, height: float) -> _FloatBox:
    return (frac[0] * width, frac[1] * height, frac[2] * width, frac[3] * height)


@lru_cache(maxsize=512)
def _face(rank: str, suit: str, width: int, height: int) -> np.ndarray:
    """Read-only (height, width, 3) pixels of one card, its rounded corners already showing the table."""
    factor = 4 if width <= 300 else 3 if width <= 600 else 2
    big_w, big_h = width * factor, height * factor
    image = Image.new("RGB", (big_w, big_h), TABLE_COLOR)
    draw = ImageDraw.Draw(image)
    border = max(1, round(factor * width / 80))
    draw.rounded_rectangle(
        (0, 0, big_w - 1, big_h - 1),
        radius=round(0.07 * big_w),
        fill=CARD_COLOR,
        outline=BORDER_COLOR,
        width=border,
    )
    ink = _ink(suit)
    _draw_text(draw, rank, _scaled(_CORNER_RANK, big_w, big_h), ink)
    sx0, sy0, sx1, sy1 = _scaled(_CORNER_SUIT, big_w, big_h)
    side = min(sx1 - sx0, sy1 - sy0)
    _draw_suit(draw, suit, (sx0 + sx1 - side) / 2, (sy0 + sy1 - side) / 2, side)

    # A real card repeats its index upside down in the opposite corner; the blank card is symmetric under a
    # half turn, so copying the rotated top-left corner there is exact.
    corner_w, corner_h = round(_CORNER_REGION[0] * big_w), round(_CORNER_REGION[1] * big_h)
    corner = image.crop((0, 0, corner_w, corner_h)).transpose(Image.Transpose.ROTATE_180)
    image.paste(corner, (big_w - corner_w, big_h - corner_h))

    _draw_text(draw, rank, _scaled(_CENTRE_RANK, big_w, big_h), ink)
    cx, cy, side = _centre_suit_square(big_w, big_h)
    _draw_suit(draw, suit, cx, cy, side)

    # reducing_gap box-averages most of the way down first: several times faster than pure LANCZOS, same look.
    small = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=2.0)
    pixels = np.array(small, dtype=np.uint8)
    pixels.flags.writeable = False
    return pixels


@lru_cache(maxsize=16)
def _empty_table(resolution: int) -> np.ndarray:
    table = np.empty((resolution, resolution, 3), dtype=np.uint8)
    table[:] = TABLE_COLOR
    table.flags.writeable = False
    return table


def render_table(ranks: Sequence[str], suits: Sequence[str], resolution: int = 448) -> np.ndarray:
    """(resolution, resolution, 3) uint8 RGB: a casino-green table with the cards in one row, centred.

    The result is a fresh array the caller may modify; same inputs always give identical pixels.
    """
    _check_resolution(resolution)
    ranks, suits = [str(r) for r in ranks], [str(s) for s in suits]
    if len(ranks) != len(suits):
        raise ValueError(f"got {len(ranks)} ranks but {len(suits)} suits")
    _check_num_cards(len(ranks))
    for rank in ranks:
        if rank not in RANKS:
            raise ValueError(f"unknown rank {rank!r}; expected one of {RANKS}")
    for suit in suits:
        if suit not in SUITS:
            raise ValueError(f"unknown suit {suit!r}; expected one of {SUITS}")

    resolution = int(resolution)
    out = _empty_table(resolution).copy()
    for (x0, y0, x1, y1), rank, suit in zip(_layout(len(ranks), resolution), ranks, suits, strict=True):
        out[y0:y1, x0:x1] = _face(rank, suit, x1 - x0, y1 - y0)
    return out


__all__ = [
    "BLACK_INK",
    "CARD_COLOR",
    "RED_INK",
    "TABLE_COLOR",
    "card_boxes",
    "render_table",
    "suit_probe",
]
