"""Pixel-level checks of the street-view raycaster on small hand-made scenes.

Sign backgrounds use colours that nothing else in these scenes has (no wall, sky or ground shade), so "is
the sign visible here" becomes "does this exact colour occur here". Signs stay within 12 m: no haze there.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shiftlab.tasks.virl import render
from shiftlab.tasks.virl.render import (
    EYE_HEIGHT,
    clear_render_caches,
    panorama_headings,
    render_grid,
    render_panorama,
    render_view,
)
from shiftlab.tasks.virl.scene import GRID_GUTTER, CityStyle, Facade, Road, Scene, Sign, view_headings

STYLE = CityStyle(
    name="test",
    sky_top=(60, 110, 200),
    sky_horizon=(205, 215, 228),
    road=(72, 72, 78),
    sidewalk=(168, 162, 150),
    center_line=(235, 205, 60),
    building_palette=((176, 150, 120), (140, 146, 160)),
    sign_backgrounds=((200, 20, 160), (20, 170, 40)),
    sign_text=(255, 255, 255),
    floors=(3, 6),
)
MAGENTA = (200, 20, 160)
GREEN = (20, 170, 40)
WHITE = (255, 255, 255)
SIZE = 256
F = SIZE / 2  # focal length in pixels at fov 90


def _street(signs: tuple[Sign, ...] = (), extra: tuple[Facade, ...] = ()) -> Scene:
    """A north-south street, 16 m between facades, buildings every 10 m from y=-60 to y=60."""
    facades = []
    for n, y in enumerate(range(-60, 60, 10)):
        facades.append(Facade(8.0, y, 8.0, y + 10.0, 9.0 + 3 * (n % 3), STYLE.building_palette[n % 2]))
        facades.append(
            Facade(-8.0, y, -8.0, y + 10.0, 12.0 - 3 * (n % 2), STYLE.building_palette[(n + 1) % 2])
        )
    return Scene(STYLE, tuple(facades) + extra, signs, (Road(0.0, -70.0, 0.0, 70.0, 10.0),))


def _east_sign(text: str = "Quill Tavern", facing: float = 270.0, background=MAGENTA) -> Sign:
    """A 6 x 1.2 m board 8 m east of the origin, at bearing 90, on the east facades."""
    return Sign(text, 8.0, 0.0, facing, 6.0, 1.2, 3.0, background, WHITE)


def _count(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(image == np.array(colour, np.uint8), axis=-1).sum())


def _columns(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.nonzero(np.all(image == np.array(colour, np.uint8), axis=-1).any(axis=0))[0]


def _rows(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.nonzero(np.all(image == np.array(colour, np.uint8), axis=-1).any(axis=1))[0]


def _sign_rows(distance: float, bottom: float = 3.0, height: float = 1.2) -> tuple[float, float]:
    """Image rows spanned by a board `distance` metres straight ahead, from the pinhole model."""
    return SIZE / 2 - F * (bottom + height - EYE_HEIGHT) / distance, SIZE / 2 - F * (
        bottom - EYE_HEIGHT
    ) / distance


@pytest.mark.parametrize("size", [32, 97, 256])
def test_shapes_and_dtype(size: int) -> None:
    scene = _street((_east_sign(),))
    view = render_view(scene, 0.0, 0.0, 90.0, size=size)
    assert view.shape == (size, size, 3) and view.dtype == np.uint8
    grid = render_grid(scene, 0.0, 0.0, 0.0, size=size)
    assert grid.shape == (2 * size + GRID_GUTTER, 2 * size + GRID_GUTTER, 3) and grid.dtype == np.uint8
    pano = render_panorama(scene, 0.0, 0.0, width=2 * size, height=size)
    assert pano.shape == (size, 2 * size, 3) and pano.dtype == np.uint8


def test_deterministic_across_calls_and_cache_resets() -> None:
    scene = _street((_east_sign(),))
    first = render_view(scene, 1.3, -2.2, 63.0)
    clear_render_caches()
    again = render_view(scene, 1.3, -2.2, 63.0)
    rebuilt = render_view(_street((_east_sign(),)), 1.3, -2.2, 63.0)
    assert np.array_equal(first, again) and np.array_equal(first, rebuilt)


def test_sky_above_horizon_and_ground_below() -> None:
    empty = Scene(STYLE, (), ())
    view = render_view(empty, 0.0, 0.0, 0.0)
    assert np.abs(view[0, SIZE // 2].astype(int) - STYLE.sky_top).max() <= 4
    sky = view[: SIZE // 2].astype(int)
    blueness = sky[..., 2] - sky[..., 0]
    assert np.all(np.diff(blueness[:, SIZE // 2]) <= 1) and blueness[0, 0] - blueness[-1, 0] > 60, (
        "paler lower down"
    )
    assert np.all(view[-10:] == np.array(STYLE.road, np.uint8)), "no facades, no roads: asphalt all round"
    street = render_view(_street(), -2.0, 0.0, 0.0)
    assert np.abs(street[0, SIZE // 2].astype(int) - STYLE.sky_top).max() <= 4, "looking up the street"
    assert np.all(street[-1, SIZE // 2] == np.array(STYLE.road, np.uint8))


@pytest.mark.parametrize(("width", "dashed"), [(10.0, True), (5.0, False)])
def test_wide_roads_have_centre_dashes_and_kerbs_separate_road_from_pavement(
    width: float, dashed: bool
) -> None:
    scene = Scene(STYLE, (), (), (Road(0.0, -100.0, 0.0, 100.0, width),))
    view = render_view(scene, 0.0, 0.0, 0.0)
    assert (_count(view[SIZE // 2 + 8 :], STYLE.center_line) > 0) == dashed
    side = render_view(scene, 0.0, 0.0, 90.0)  # looking across the road, at the pavement beyond
    rows = side[SIZE // 2 + 1 :, SIZE // 2].astype(int)
    edge = SIZE / 2 + F * EYE_HEIGHT / (width / 2)  # where the far edge of the asphalt meets the kerb
    assert np.all(rows[: int(edge) - SIZE // 2 - 4, :] != STYLE.road), "beyond the kerb: pavement, hazed"
    assert np.all(side[int(edge) + 3 :, SIZE // 2] == np.array(STYLE.road, np.uint8))


def test_a_wall_facing_the_camera_projects_with_pinhole_heights() -> None:
    """A wall parallel to the image plane has top and foot on one row each, where the pinhole puts them."""
    wall = Facade(-50.0, 10.0, 50.0, 10.0, 12.0, (40, 200, 40))
    view = render_view(Scene(STYLE, (wall,), ()), 0.0, 0.0, 0.0).astype(int)
    green = view[..., 1] > view[..., [0, 2]].max(axis=-1) + 40  # wall and cornice, not glass, sky or street
    top = SIZE / 2 - F * (12.0 - EYE_HEIGHT) / 10.0
    foot = SIZE / 2 + F * EYE_HEIGHT / 10.0
    for column in (3, SIZE // 2, SIZE - 4):
        rows = np.nonzero(green[:, column])[0]
        assert abs(rows.min() + 0.5 - top) <= 1.0 and abs(rows.max() + 0.5 - foot) <= 1.0


def test_sign_appears_in_the_view_that_faces_it() -> None:
    scene = _street((_east_sign(),))
    right = render_view(scene, 0.0, 0.0, 90.0)
    assert _count(right, MAGENTA) > 300
    cols, rows = _columns(right, MAGENTA), _rows(right, MAGENTA)
    half_width = F * 3.0 / 8.0
    assert abs(cols.min() - (SIZE / 2 - half_width)) <= 3 and abs(cols.max() - (SIZE / 2 + half_width)) <= 3
    top, bottom = _sign_rows(8.0)
    assert abs(rows.min() - top) <= 2 and abs(rows.max() - bottom) <= 2
    for heading in (0.0, 180.0, 270.0):
        assert _count(render_view(scene, 0.0, 0.0, heading), MAGENTA) == 0


def test_sign_ahead_and_to_the_right_is_in_the_right_half_of_the_front_view() -> None:
    bearing, distance = 30.0, 10.0
    x, y = distance * math.sin(math.radians(bearing)), distance * math.cos(math.radians(bearing))
    normal = math.radians(bearing + 90.0)
    wall = Facade(
        x - 8 * math.sin(normal),
        y - 8 * math.cos(normal),
        x + 8 * math.sin(normal),
        y + 8 * math.cos(normal),
        10.0,
        (150, 146, 160),
    )
    scene = Scene(STYLE, (wall,), (Sign("Larch Bakery", x, y, bearing + 180.0, 6.0, 1.2, 3.0, GREEN, WHITE),))
    front = render_view(scene, 0.0, 0.0, 0.0)
    cols = _columns(front, GREEN)
    assert cols.size and cols.min() > SIZE / 2
    assert abs((cols.min() + cols.max()) / 2 - (SIZE / 2 + F * math.tan(math.radians(bearing)))) <= 10
    turned = render_view(scene, 0.0, 0.0, 90.0)
    cols = _columns(turned, GREEN)
    assert cols.size and cols.max() < SIZE / 2, "turning right by 90 puts it in the left half"


@pytest.mark.parametrize("side", ["ahead", "right"])
def test_twelve_letter_sign_at_ten_metres_has_large_high_contrast_text(side: str) -> None:
    if side == "ahead":
        wall, sign, heading = (
            Facade(-30, 10, 30, 10, 12, (176, 150, 120)),
            Sign("Larch Bakery", 0, 10, 180, 6, 1.2, 3, GREEN, WHITE),
            0.0,
        )
    else:
        wall, sign, heading = (
            Facade(10, -30, 10, 30, 12, (176, 150, 120)),
            Sign("Larch Bakery", 10, 0, 270, 6, 1.2, 3, GREEN, WHITE),
            90.0,
        )
    view = render_view(Scene(STYLE, (wall,), (sign,)), 0.0, 0.0, heading)
    top, bottom = _sign_rows(10.0)
    board = view[math.ceil(top) : math.floor(bottom), 128 - 36 : 128 + 36].astype(int)
    luminance = board.mean(axis=-1)
    ink = luminance > 200  # white letters on a dark green board
    assert ink.mean() > 0.1 and (luminance < 110).mean() > 0.3
    letter_rows = np.nonzero(ink.any(axis=1))[0]
    assert letter_rows.max() - letter_rows.min() + 1 >= 9, "letters at least 9 px tall"
    inked_columns = np.nonzero(ink.any(axis=0))[0]
    assert inked_columns.max() - inked_columns.min() > 0.8 * board.shape[1], (
        "text runs the width of the board"
    )


def test_different_texts_give_different_pixels_only_on_the_sign() -> None:
    a = render_view(_street((_east_sign("Quill Tavern"),)), 0.0, 0.0, 90.0)
    b = render_view(_street((_east_sign("Vane Chemist"),)), 0.0, 0.0, 90.0)
    differs = np.any(a != b, axis=-1)
    assert differs.sum() > 100
    top, bottom = _sign_rows(8.0)
    rows, cols = np.nonzero(differs)
    assert rows.min() >= top - 1 and rows.max() <= bottom + 1
    assert cols.min() >= SIZE / 2 - F * 3 / 8 - 1 and cols.max() <= SIZE / 2 + F * 3 / 8 + 1


def test_letters_the_bundled_font_lacks_lose_their_accents_instead_of_becoming_boxes() -> None:
    accented = render_view(_street((_east_sign("Café Crème"),)), 0.0, 0.0, 90.0)
    plain = render_view(_street((_east_sign("Cafe Creme"),)), 0.0, 0.0, 90.0)
    assert np.array_equal(accented, plain)


def test_sign_seen_from_behind_is_not_drawn() -> None:
    scene = _street((_east_sign(facing=90.0),))
    assert _count(render_view(scene, 0.0, 0.0, 90.0), MAGENTA) == 0


def test_sign_behind_a_wall_is_hidden() -> None:
    sign = Sign("Hollis Books", 0.0, 12.0, 180.0, 6.0, 1.2, 3.0, MAGENTA, WHITE)
    back = Facade(-20.0, 12.0, 20.0, 12.0, 10.0, (150, 146, 160))
    screen = Facade(-10.0, 6.0, 10.0, 6.0, 10.0, (176, 150, 120))
    assert _count(render_view(Scene(STYLE, (back,), (sign,)), 0.0, 0.0, 0.0), MAGENTA) > 40
    assert _count(render_view(Scene(STYLE, (back, screen), (sign,)), 0.0, 0.0, 0.0), MAGENTA) == 0
    low = Facade(-10.0, 6.0, 10.0, 6.0, 2.0, (176, 150, 120))
    assert _count(render_view(Scene(STYLE, (back, low), (sign,)), 0.0, 0.0, 0.0), MAGENTA) > 40, (
        "a low wall hides nothing above it"
    )


def test_sign_out_of_range_is_not_drawn() -> None:
    scene = _street((_east_sign(),))
    far_away = render.SIGN_RANGE + 1.0
    assert _count(render_view(scene, 8.0 - far_away, 0.0, 90.0), MAGENTA) == 0


def test_grid_prompt_layout_puts_a_sign_on_the_right_in_the_top_right_tile() -> None:
    scene = _street((_east_sign(),))
    grid = render_grid(scene, 0.0, 0.0, 0.0, layout="prompt")
    step = SIZE + GRID_GUTTER
    tiles = [grid[r * step : r * step + SIZE, c * step : c * step + SIZE] for r in (0, 1) for c in (0, 1)]
    assert [_count(tile, MAGENTA) > 0 for tile in tiles] == [False, True, False, False]
    for tile, heading in zip(tiles, view_headings(0.0, "prompt"), strict=True):
        assert np.array_equal(tile, render_view(scene, 0.0, 0.0, heading))
    legacy = render_grid(scene, 0.0, 0.0, 0.0, layout="legacy")
    assert _count(legacy[:SIZE], MAGENTA) == 0 and _count(legacy[step:], MAGENTA) > 0, (
        "bearing 90 sits between h+45 and h+135"
    )


def test_grid_cache_returns_equal_fresh_arrays() -> None:
    scene = _street((_east_sign(),))
    first = render_grid(scene, 0.0, 0.0, 0.0)
    second = render_grid(scene, 0.001, 0.0, 0.0)
    assert first is not second and np.array_equal(first, second) and second.flags.writeable
    first[:] = 0
    assert np.array_equal(render_grid(scene, 0.0, 0.0, 0.0), second)
    other = _street((_east_sign(background=GREEN),))
    assert _count(render_grid(other, 0.0, 0.0, 0.0), GREEN) > 0, "another scene is not served from the cache"
    with pytest.raises(ValueError):
        render_grid(scene, 0.0, 0.0, 0.0, layout="sideways")


def test_panorama_columns_follow_the_real_data_heading_convention() -> None:
    width, height = 1024, 512
    headings = panorama_headings(width)
    assert headings[0] == pytest.approx(0.0, abs=1e-9) and headings[(width - 1) // 2] == pytest.approx(
        180.0, abs=0.2
    )
    pano = render_panorama(_street((_east_sign(),)), 0.0, 0.0, width, height)
    cols, rows = _columns(pano, MAGENTA), _rows(pano, MAGENTA)
    east = (90.0 - 180.0) / 360.0 + 0.5
    assert abs((cols.min() + cols.max()) / 2 - east * (width - 1)) <= 2
    assert rows.max() < (height - 1) / 2, "the board hangs above eye level"
    assert np.abs(pano[0].astype(int) - STYLE.sky_top).max() <= 4, "row 0 is the zenith"


def _sample_pano(pano: np.ndarray, heading: float, size: int, fov: float = 90.0) -> np.ndarray:
    """The real-data loader's equirect-to-perspective mapping (nearest texel), written out independently."""
    hp, wp = pano.shape[:2]
    f = size / (2 * math.tan(math.radians(fov) / 2))
    u, v = np.meshgrid(np.arange(size) + 0.5 - size / 2, np.arange(size) + 0.5 - size / 2)
    rays = np.stack([u / f, v / f, np.ones_like(u)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    turn = math.radians((heading - 180.0) % 360.0)
    x = rays[..., 0] * math.cos(turn) + rays[..., 2] * math.sin(turn)
    z = -rays[..., 0] * math.sin(turn) + rays[..., 2] * math.cos(turn)
    lon, lat = np.arctan2(x, z), np.arcsin(rays[..., 1])
    cx = np.round((lon / (2 * math.pi) + 0.5) * (wp - 1)).astype(int) % wp
    cy = np.clip(np.round((lat / math.pi + 0.5) * (hp - 1)).astype(int), 0, hp - 1)
    return pano[cy, cx]


@pytest.mark.parametrize("heading", [0.0, 90.0, 215.0])
def test_panorama_resampled_like_real_data_matches_the_perspective_view(heading: float) -> None:
    scene = _street((_east_sign(),))
    pano = render_panorama(scene, -1.0, 2.0, width=2048, height=1024)
    sampled = _sample_pano(pano, heading, 128)
    direct = render_view(scene, -1.0, 2.0, heading, size=128)
    assert np.abs(sampled.astype(int) - direct.astype(int)).mean() < 6
    assert (_count(direct, MAGENTA) > 0) == (_count(sampled, MAGENTA) > 0)


def test_rejects_bad_arguments() -> None:
    scene = _street()
    with pytest.raises(ValueError):
        render_view(scene, 0.0, 0.0, 0.0, size=0)
    with pytest.raises(ValueError):
        render_view(scene, 0.0, 0.0, 0.0, fov=180.0)
    with pytest.raises(ValueError):
        render_panorama(scene, 0.0, 0.0, width=1)
