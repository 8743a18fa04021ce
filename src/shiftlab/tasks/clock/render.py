"""A picture of the clock for `render()` and `shiftlab play`: the dial, its numbers, and the hand at
the hour shown. The observation stays text; the picture only lets a person see the episode.

Drawn with Pillow shapes and its built-in font; the face (everything but the hand) is cached per
dial and size, so a render is one copy and a line."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shiftlab.tasks.clock.dial import first_hour, last_hour

BACKGROUND = (245, 243, 236)
INK = (25, 25, 25)
HAND = (190, 30, 30)
MAX_LABELS = 60  # a larger dial labels about a dozen evenly spaced numbers
MAX_TICKS = 120


def _point(size: int, hour: int, dial: int, radius: float) -> tuple[float, float]:
    """Where `hour` sits at `radius` (a fraction of the half size): numbers that agree modulo the
    dial share a position, so 12 on a 1..12 dial sits at the top where 0 sits on a 0..11 one."""
    angle = 2 * math.pi * (hour % dial) / dial
    half = size / 2
    return half + radius * half * math.sin(angle), half - radius * half * math.cos(angle)


@lru_cache(maxsize=32)
def _face(dial: int, zero_based: bool, size: int) -> np.ndarray:
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    margin = size * 0.03
    draw.ellipse((margin, margin, size - margin, size - margin), outline=INK, width=max(1, size // 100))
    first, last = first_hour(zero_based), last_hour(dial, zero_based)
    step = 1 if dial <= MAX_LABELS else math.ceil(dial / 12)
    labelled = [hour for hour in range(first, last + 1) if hour % dial % step == 0]
    ticks = range(first, last + 1) if dial <= MAX_TICKS else labelled
    for hour in ticks:
        draw.line((_point(size, hour, dial, 0.9), _point(size, hour, dial, 0.94)), fill=INK, width=1)
    font = ImageFont.load_default(size=max(6, int(size / max(10, 0.9 * len(labelled)))))
    for hour in labelled:
        draw.text(_point(size, hour, dial, 0.78), str(hour), fill=INK, font=font, anchor="mm")
    return np.asarray(image)


def render_clock(dial: int, zero_based: bool, hour: int, size: int) -> np.ndarray:
    """An RGB array (size x size x 3) of the dial with the hand at `hour`."""
    image = Image.fromarray(_face(dial, zero_based, size))
    draw = ImageDraw.Draw(image)
    centre = (size / 2, size / 2)
    draw.line((centre, _point(size, hour, dial, 0.62)), fill=HAND, width=max(2, size // 60))
    draw.ellipse((size / 2 - size / 60, size / 2 - size / 60, size / 2 + size / 60, size / 2 + size / 60), fill=HAND)
    return np.asarray(image)
