"""The grid hash behind V-IRL's near-neighbour queries, against brute force over every point."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shiftlab.tasks.virl.spatial import SpatialHash


def _points(seed: int) -> list[tuple[float, float]]:
    generator = np.random.default_rng(seed)
    points = generator.uniform(-100.0, 100.0, (300, 2)).tolist()
    points += [(10.0 * i, -10.0 * j) for i in range(-3, 4) for j in range(-3, 4)]  # on cell edges
    return [tuple(p) for p in points]


def _expected(grid: SpatialHash, points, cells) -> list[int]:
    """Indices of the points whose cell is in `cells`, cell by cell (x, then y) and by index."""
    keyed = [(grid.cell(*p), k) for k, p in enumerate(points) if grid.cell(*p) in cells]
    return [k for _, k in sorted(keyed)]


@pytest.mark.parametrize("size", [10.0, 7.3, 64.0])
def test_queries_match_brute_force(size):
    points = _points(int(size))
    grid = SpatialHash(size)
    assert [grid.add(*p) for p in points] == list(range(len(points)))
    queries = np.random.default_rng(1).uniform(-120.0, 120.0, (200, 2)).tolist() + [[0.0, 0.0], [10.0, -20.0]]
    for (x, y), radius in zip(queries, np.random.default_rng(2).uniform(0.0, 40.0, len(queries)), strict=True):
        cx, cy = grid.cell(x, y)
        for reach in (0, 1, 2):
            block = {(cx + i, cy + j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)}
            assert grid.around(x, y, reach) == _expected(grid, points, block)
        found = grid.overlapping(x, y, radius)
        (i0, j0), (i1, j1) = grid.cell(x - radius, y - radius), grid.cell(x + radius, y + radius)
        box = {(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)}
        assert found == _expected(grid, points, box)
        assert {k for k, p in enumerate(points) if math.dist(p, (x, y)) <= radius} <= set(found)


def test_built_from_points_and_empty():
    points = _points(3)
    built, added = SpatialHash(5.0, points), SpatialHash(5.0)
    for p in points:
        added.add(*p)
    assert built.around(3.0, -4.0, 4) == added.around(3.0, -4.0, 4) != []
    assert SpatialHash(5.0).around(0.0, 0.0, 3) == []
    assert SpatialHash(5.0).overlapping(0.0, 0.0, 50.0) == []
