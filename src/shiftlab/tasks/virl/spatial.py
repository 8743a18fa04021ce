"""A grid hash of 2-D points: near-neighbour queries look at a few cells instead of every point."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


class SpatialHash:
    """Point indices (0, 1, ... in insertion order) bucketed into square cells `size` wide.

    Queries list cells by x, then y, ascending, and each cell's points in insertion order, so callers that
    break ties by list position get the same answer on every run.
    """

    def __init__(self, size: float, points: Iterable[Sequence[float]] = ()) -> None:
        self.size = size
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._count = 0
        for x, y in points:
            self.add(x, y)

    def cell(self, x: float, y: float) -> tuple[int, int]:
        return math.floor(x / self.size), math.floor(y / self.size)

    def add(self, x: float, y: float) -> int:
        """Insert a point and return its index."""
        self._cells.setdefault(self.cell(x, y), []).append(self._count)
        self._count += 1
        return self._count - 1

    def around(self, x: float, y: float, reach: int = 1) -> list[int]:
        """The points in the cells at most `reach` cells from (x, y)'s along each axis: a superset of those
        within `reach * size` of it."""
        size, cells = self.size, self._cells
        cx, cy = math.floor(x / size), math.floor(y / size)
        return [
            k for i in range(cx - reach, cx + reach + 1) for j in range(cy - reach, cy + reach + 1)
            for k in cells.get((i, j), ())
        ]  # fmt: skip

    def overlapping(self, x: float, y: float, radius: float) -> list[int]:
        """The points in the cells that meet the square of half-side `radius` centred on (x, y): a superset
        of those within `radius` of it."""
        size, cells = self.size, self._cells
        i0, i1 = math.floor((x - radius) / size), math.floor((x + radius) / size)
        j0, j1 = math.floor((y - radius) / size), math.floor((y + radius) / size)
        return [k for i in range(i0, i1 + 1) for j in range(j0, j1 + 1) for k in cells.get((i, j), ())]
