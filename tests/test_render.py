"""Pixel-level checks of the GeneralPoints table renderer: layout, colours, legibility cues, caching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from shiftlab.tasks.general_points import render
from shiftlab.tasks.general_points.cards import RANKS, RED_SUITS, SUITS
from shiftlab.tasks.general_points.render import (
    BLACK_INK,
    CARD_COLOR,
    RED_INK,
    TABLE_COLOR,
    card_boxes,
    render_table,
    suit_probe,
)

MIXED_RANKS = ["10", "Q", "7", "A", "K", "2", "J", "9"]
MIXED_SUITS = ["H", "S", "D", "C", "S", "H", "C", "D"]


def _deal(n: int) -> tuple[list[str], list[str]]:
    return MIXED_RANKS[:n], MIXED_SUITS[:n]


def _close(pixel: np.ndarray, color: tuple[int, int, int], tol: int) -> bool:
    return int(np.abs(pixel.astype(int) - np.array(color)).max()) <= tol


@pytest.mark.parametrize(("resolution", "n"), [(64, 1), (64, 8), (300, 3), (448, 4), (1200, 6), (1000, 8)])
def test_shape_and_dtype(resolution: int, n: int) -> None:
    image = render_table(*_deal(n), resolution=resolution)
    assert image.shape == (resolution, resolution, 3)
    assert image.dtype == np.uint8
    assert image.flags.writeable


def test_default_resolution_is_448() -> None:
    assert render_table(["A"], ["S"]).shape == (448, 448, 3)


def test_same_inputs_same_pixels_even_after_clearing_caches() -> None:
    first = render_table(*_deal(5), resolution=333)
    render._face.cache_clear()
    render._empty_table.cache_clear()
    render._layout.cache_clear()
    assert np.array_equal(first, render_table(*_deal(5), resolution=333))
    assert np.array_equal(first, render_table(tuple(MIXED_RANKS[:5]), tuple(MIXED_SUITS[:5]), 333))


def test_each_call_returns_a_fresh_array() -> None:
    first = render_table(*_deal(4))
    reference = first.copy()
    first[:] = 0
    second = render_table(*_deal(4))
    assert np.array_equal(second, reference)
    assert not np.shares_memory(first, second)


@pytest.mark.parametrize(("resolution", "n"), [(64, 8), (448, 1), (448, 4), (1200, 6), (4096, 8)])
def test_card_boxes_form_a_centred_row(resolution: int, n: int) -> None:
    boxes = card_boxes(n, resolution)
    assert len(boxes) == n
    for (x0, y0, x1, y1), nxt in zip(boxes, boxes[1:] + [None], strict=True):
        assert 0 <= x0 < x1 <= resolution and 0 <= y0 < y1 <= resolution
        assert (y1 - y0) / (x1 - x0) == pytest.approx(7 / 5, abs=0.1)
        assert x1 - x0 <= 0.3 * resolution + 1
        if nxt is not None:
            assert x1 < nxt[0]
            assert nxt[1:4:2] == (y0, y1)
    assert abs(boxes[0][0] - (resolution - boxes[-1][2])) <= 1
    assert abs(boxes[0][1] - (resolution - boxes[0][3])) <= 1


def test_four_cards_at_448_are_about_a_hundred_pixels_wide() -> None:
    widths = [x1 - x0 for x0, _, x1, _ in card_boxes(4, 448)]
    assert all(90 <= w <= 105 for w in widths)


def test_single_card_is_capped() -> None:
    ((x0, y0, x1, y1),) = card_boxes(1, 1000)
    assert 250 <= x1 - x0 <= 301


@pytest.mark.parametrize(("resolution", "n"), [(448, 1), (448, 4), (1200, 6), (300, 8)])
def test_table_and_cards_are_where_the_boxes_say(resolution: int, n: int) -> None:
    image = render_table(*_deal(n), resolution=resolution)
    boxes = card_boxes(n, resolution)
    for x, y in [(0, 0), (resolution - 1, resolution - 1), (resolution // 2, 2), (3, resolution // 2)]:
        assert tuple(image[y, x]) == TABLE_COLOR
    for (x0, y0, x1, y1), nxt in zip(boxes, boxes[1:] + [None], strict=True):
        mid = (y0 + y1) // 2
        assert tuple(image[y0 - 1, (x0 + x1) // 2]) == TABLE_COLOR
        assert tuple(image[y1, (x0 + x1) // 2]) == TABLE_COLOR
        assert tuple(image[mid, x0 - 1]) == TABLE_COLOR
        if nxt is not None:
            assert tuple(image[mid, (x1 + nxt[0]) // 2]) == TABLE_COLOR
        row = image[mid, x0:x1]
        assert not (row == TABLE_COLOR).all(axis=-1).any()


@pytest.mark.parametrize(("resolution", "n"), [(448, 4), (1200, 6), (448, 1)])
def test_cards_are_mostly_blank_card_colour(resolution: int, n: int) -> None:
    image = render_table(*_deal(n), resolution=resolution)
    for x0, y0, x1, y1 in card_boxes(n, resolution):
        w, h = x1 - x0, y1 - y0
        # The top-right and bottom-left corners carry no index on a real card.
        assert tuple(image[y0 + h // 10, x1 - w // 8]) == CARD_COLOR
        assert tuple(image[y1 - h // 10, x0 + w // 8]) == CARD_COLOR
        card = image[y0:y1, x0:x1]
        assert (card == CARD_COLOR).all(axis=-1).mean() > 0.5


@pytest.mark.parametrize("resolution", [448, 1200])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_suit_probe_hits_the_suit_colour(resolution: int, n: int) -> None:
    for offset in range(len(SUITS)):
        suits = list(itertools.islice(itertools.cycle(SUITS[offset:] + SUITS[:offset]), n))
        ranks = list(itertools.islice(itertools.cycle(RANKS[offset:]), n))
        image = render_table(ranks, suits, resolution)
        for box, suit in zip(card_boxes(n, resolution), suits, strict=True):
            x, y = suit_probe(box)
            assert box[0] <= x < box[2] and box[1] <= y < box[3]
            ink = RED_INK if suit in RED_SUITS else BLACK_INK
            other = BLACK_INK if suit in RED_SUITS else RED_INK
            assert _close(image[y, x], ink, tol=8), (suit, tuple(image[y, x]))
            assert not _close(image[y, x], other, tol=60)


def _card(rank: str, suit: str, resolution: int = 448) -> np.ndarray:
    image = render_table([rank], [suit], resolution)
    x0, y0, x1, y1 = card_boxes(1, resolution)[0]
    return image[y0:y1, x0:x1].astype(int)


def _changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b).max(axis=-1) > 40).mean())


@pytest.mark.parametrize(("a", "b"), [("7", "J"), ("6", "9"), ("10", "J"), ("Q", "K"), ("A", "4")])
def test_ranks_change_the_face(a: str, b: str) -> None:
    assert _changed_fraction(_card(a, "S"), _card(b, "S")) > 0.02


@pytest.mark.parametrize(("a", "b"), [("S", "C"), ("H", "D")])
def test_suits_of_one_colour_have_different_shapes(a: str, b: str) -> None:
    card_a, card_b = _card("5", a), _card("5", b)
    assert _changed_fraction(card_a, card_b) > 0.01
    h, w = card_a.shape[:2]
    # Mostly the big centre symbol, so the difference is the shape, not just the small corner pips.
    centre = (slice(int(0.5 * h), int(0.85 * h)), slice(int(0.25 * w), int(0.75 * w)))
    assert _changed_fraction(card_a[centre], card_b[centre]) > 0.05


def test_all_faces_at_448_are_distinct() -> None:
    faces = {(r, s): _card(r, s).astype(np.uint8).tobytes() for r in RANKS for s in SUITS}
    assert len(set(faces.values())) == len(RANKS) * len(SUITS)


def test_red_suits_use_red_ink_and_black_suits_none() -> None:
    def reddish(card: np.ndarray) -> int:
        return int(((card[..., 0] > 150) & (card[..., 1] < 90) & (card[..., 2] < 90)).sum())

    assert reddish(_card("8", "H")) > 500 and reddish(_card("8", "D")) > 500
    assert reddish(_card("8", "S")) == 0 and reddish(_card("8", "C")) == 0


@pytest.mark.parametrize(
    ("ranks", "suits", "resolution"),
    [
        (["A"], ["S"], 63),
        (["A"], ["S"], 4097),
        (["A"], ["S"], 448.0),
        (["A", "2"], ["S"], 448),
        ([], [], 448),
        (["A"] * 9, ["S"] * 9, 448),
        (["1"], ["S"], 448),
        (["11"], ["S"], 448),
        (["a"], ["S"], 448),
        (["A"], ["X"], 448),
        (["A"], ["h"], 448),
    ],
)
def test_invalid_inputs_raise(ranks: list[str], suits: list[str], resolution: int) -> None:
    with pytest.raises(ValueError):
        render_table(ranks, suits, resolution)


@pytest.mark.parametrize(("n", "resolution"), [(0, 448), (9, 448), (4, 10), (4, 5000)])
def test_invalid_card_boxes_raise(n: int, resolution: int) -> None:
    with pytest.raises(ValueError):
        card_boxes(n, resolution)
