"""What a street-view renderer needs to know about a procedural city, and how four views become a grid.

The world generator (world.py) describes a city as a Scene: building facades, shop signs and roads
in local metres (x east, y north), plus the city's visual style. The renderer (render.py) turns a
Scene, a position and a heading into a perspective image. Neither knows about routes or prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]

# The 2x2 grid: "prompt" puts [front, right; back, left] where the prompt says they are (the fix);
# "legacy" reproduces the original's [h-135, h-45; h+45, h+135] (virl.md Q3).
LAYOUTS = ("prompt", "legacy")
GRID_GUTTER = 5


@dataclass(frozen=True)
class CityStyle:
    """The look of a city: colours, building heights, sign typography."""

    name: str
    sky_top: RGB
    sky_horizon: RGB
    road: RGB
    sidewalk: RGB
    center_line: RGB
    building_palette: tuple[RGB, ...]
    sign_backgrounds: tuple[RGB, ...]
    sign_text: RGB
    floors: tuple[int, int]  # min and max storeys
    uppercase_signs: bool = False


@dataclass(frozen=True)
class Facade:
    """A building front: a vertical wall over the segment (x0, y0)-(x1, y1), `height` metres tall."""

    x0: float
    y0: float
    x1: float
    y1: float
    height: float
    color: RGB


@dataclass(frozen=True)
class Sign:
    """A shop sign mounted flat on a facade, centred at (x, y), its face looking towards `facing`
    (compass degrees, the outward normal of the facade). Sizes and elevation in metres."""

    text: str
    x: float
    y: float
    facing: float
    width: float
    height: float
    elevation: float
    background: RGB
    foreground: RGB


@dataclass(frozen=True)
class Road:
    x0: float
    y0: float
    x1: float
    y1: float
    width: float


@dataclass(frozen=True)
class Scene:
    style: CityStyle
    facades: tuple[Facade, ...]
    signs: tuple[Sign, ...]
    roads: tuple[Road, ...] = field(default=())


def view_headings(heading: float, layout: str = "prompt") -> list[float]:
    """Headings of the four tiles in grid order (top-left, top-right, bottom-left, bottom-right)."""
    if layout == "prompt":
        offsets = (0, 90, 180, 270)  # front, right, back, left
    elif layout == "legacy":
        offsets = (-135, -45, 45, 135)
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    return [(heading + o) % 360.0 for o in offsets]


def assemble_grid(views: Sequence[np.ndarray], gutter: int = GRID_GUTTER) -> np.ndarray:
    """Four equal square RGB tiles -> one (2s+gutter)^2 image with black gutters, as the original."""
    if len(views) != 4:
        raise ValueError(f"a grid needs 4 views, got {len(views)}")
    size = views[0].shape[0]
    grid = np.zeros((2 * size + gutter, 2 * size + gutter, 3), np.uint8)
    for i, view in enumerate(views):
        if view.shape != (size, size, 3):
            raise ValueError(f"view {i} has shape {view.shape}, expected {(size, size, 3)}")
        row, col = divmod(i, 2)
        y, x = row * (size + gutter), col * (size + gutter)
        grid[y : y + size, x : x + size] = view
    return grid
