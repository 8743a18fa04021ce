"""Equirectangular panoramas: perspective views cut from them, and the conventions to render them.

The released V-IRL data stores one equirectangular panorama per pano id, plus a `rotation` in its
metadata. The original cuts its four street views from these with a pinhole camera; we reproduce its
formulas (virl.md §3.2) so our views match its views pixel for pixel up to interpolation.

Conventions, shared with the procedural renderer that writes panoramas in this format:

- A panorama is an array of shape (H, W) or (H, W, C); row 0 is the top, column 0 the left.
- Camera rays use x to the right, y **down** and z forward (image coordinates). A ray has longitude
  lon = atan2(x, z) and latitude lat = asin(y / |ray|), and samples the panorama at
  X = (lon / 2π + 0.5)(W − 1), Y = (lat / π + 0.5)(H − 1). Since y points down, Y = 0 is straight
  up, Y = (H − 1)/2 the horizon and Y = H − 1 straight down (`equirect_row_elevation`).
- Column X of a panorama stored with metadata rotation r shows compass heading
  h = (deg(2π(X/(W − 1) − 0.5)) − r + 180) mod 360 (`equirect_column_heading`); at r = 0, column 0 and
  column W − 1 both look north, the centre column looks south, and heading grows left to right
  (north, east, south, west), as a viewer turning clockwise sees it.
- A view at compass heading h uses heading' = ((h − 180) mod 360 + r) mod 360: rays are rotated
  about +y by heading', then about the rotated x-axis by the pitch (pitch > 0 looks up). In a view,
  right of centre is clockwise of h.
- The pinhole has focal length f = size / (2 tan(fov / 2)) and its principal point at the centre of
  the pixel grid, ((size − 1)/2, (size − 1)/2), so rays are symmetric about the optical axis.

The original samples bicubically (cv2.INTER_CUBIC); we sample bilinearly in numpy (in float32), which
is several times cheaper and needs no OpenCV, at the cost of slightly softer views. Horizontally the
panorama wraps: longitudes are taken modulo 2π, so a view across the north seam reads both ends.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _heading_prime(heading: float, rotation: float) -> float:
    return ((heading - 180.0) % 360.0 + rotation) % 360.0


@lru_cache(maxsize=32)
def _rays(size: int, fov: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """X/(W−1) and Y/(H−1) of every pixel's ray at heading' = 0, flattened row-major.

    A rotation about +y only adds heading' to the longitude and leaves the latitude alone (the pitch
    axis is the *rotated* x-axis, so R_pitch·R_heading = R_heading·R_x(pitch)), so one grid per
    (size, fov, pitch) serves every heading and a view costs an add, a wrap and a gather.
    """
    f = size / (2.0 * math.tan(math.radians(fov) / 2.0))
    c = (size - 1) / 2.0
    u = (np.arange(size, dtype=np.float64) - c) / f
    x, y = np.meshgrid(u, u)
    z = np.ones_like(x)
    p = math.radians(pitch)
    y, z = math.cos(p) * y - math.sin(p) * z, math.sin(p) * y + math.cos(p) * z
    lon = np.arctan2(x, z)
    lat = np.arcsin(np.clip(y / np.sqrt(x * x + y * y + z * z), -1.0, 1.0))
    column = (lon / (2.0 * math.pi) + 0.5).ravel()
    row = (lat / math.pi + 0.5).ravel()
    for a in (column, row):
        a.flags.writeable = False
    return column, row


@lru_cache(maxsize=32)
def _row_taps(size: int, fov: float, pitch: float, height: int, width: int) -> tuple[np.ndarray, ...]:
    """Flat offsets of the two panorama rows each pixel blends, and the blend weight; heading-independent."""
    index = np.int32 if height * width < 2**31 else np.int64
    ys = _rays(size, fov, pitch)[1] * (height - 1)
    y0 = np.minimum(ys.astype(index), height - 1)
    wy = (ys - y0).astype(np.float32)
    taps = (y0 * index(width), np.minimum(y0 + 1, height - 1) * index(width), wy)
    for a in taps:
        a.flags.writeable = False
    return taps


def _validate_pano(pano: np.ndarray) -> None:
    if not isinstance(pano, np.ndarray) or pano.ndim not in (2, 3):
        raise ValueError("a panorama must be a numpy array of shape (H, W) or (H, W, C)")
    if pano.shape[0] < 2 or pano.shape[1] < 2:
        raise ValueError(f"a panorama must be at least 2x2 pixels, got shape {pano.shape}")


def perspective_from_equirect(
    pano: np.ndarray,
    heading: float,
    rotation: float = 0.0,
    fov: float = 90.0,
    size: int = 256,
    pitch: float = 0.0,
) -> np.ndarray:
    """The size×size pinhole view at compass `heading` from a panorama stored with `rotation` (degrees).

    Returns an array of the panorama's dtype, shape (size, size) or (size, size, C).
    """
    _validate_pano(pano)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, not {size!r}")
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, not {fov!r}")
    height, width = pano.shape[:2]
    key = (int(size), float(fov), float(pitch))
    column = _rays(*key)[0]
    top, bottom, wy = _row_taps(*key, height, width)
    theta = math.radians(_heading_prime(float(heading), float(rotation)))
    # lon = atan2(x, z) lies in [-π, π): X = (lon/2π + 0.5)(W−1) stays within [0, W−1], where
    # columns 0 and W−1 are both the seam direction, so the wrap is the longitude's modulo.
    xs = column * (width - 1) + theta / (2.0 * math.pi) * (width - 1)
    np.subtract(xs, width - 1, out=xs, where=xs >= width - 1)
    x0 = xs.astype(top.dtype)
    x1 = np.minimum(x0 + 1, width - 1)
    wx = (xs - x0).astype(np.float32)
    taps = (top + x0, top + x1, bottom + x0, bottom + x1)
    flat = pano.reshape(height * width, -1)
    integer = np.issubdtype(pano.dtype, np.integer)
    out = np.empty((size * size, flat.shape[1]), dtype=pano.dtype)
    for c in range(flat.shape[1]):
        channel = flat[:, c]
        upper = channel[taps[0]].astype(np.float32)
        upper += (channel[taps[1]] - upper) * wx
        lower = channel[taps[2]].astype(np.float32)
        lower += (channel[taps[3]] - lower) * wx
        upper += (lower - upper) * wy
        out[:, c] = np.rint(upper, out=upper) if integer else upper
    return out.reshape((size, size) + pano.shape[2:])


def equirect_column_heading(X: float | np.ndarray, width: int, rotation: float = 0.0) -> float | np.ndarray:
    """Compass heading (degrees, [0, 360)) of column X of a panorama `width` wide stored with `rotation`.

    The inverse of the sampling in perspective_from_equirect; renderers use it to draw a panorama.
    """
    lon = 2.0 * np.pi * (np.asarray(X, dtype=np.float64) / (width - 1) - 0.5)
    heading = (np.degrees(lon) - rotation + 180.0) % 360.0
    return float(heading) if heading.ndim == 0 else heading


def equirect_row_elevation(Y: float | np.ndarray, height: int) -> float | np.ndarray:
    """Elevation above the horizon (degrees) shown by row Y: +90 at row 0, 0 mid-height, −90 at the bottom."""
    elevation = 90.0 - 180.0 * np.asarray(Y, dtype=np.float64) / (height - 1)
    return float(elevation) if elevation.ndim == 0 else elevation


def rotate_equirect(pano: np.ndarray, rotation: float) -> np.ndarray:
    """The panorama as stored with metadata rotation `rotation`, given one rendered at rotation 0.

    Stored column X must show what rendered column X' shows, where lon(X') = lon(X) − rotation; that is
    a horizontal shift by rotation/360·(W − 1) columns, interpolated linearly when not whole. Views cut
    with the rotation then equal views cut from the unrotated panorama, up to interpolation.
    """
    _validate_pano(pano)
    width = pano.shape[1]
    lon = 2.0 * np.pi * (np.arange(width, dtype=np.float64) / (width - 1) - 0.5) - math.radians(rotation)
    lon = (lon + np.pi) % (2.0 * np.pi) - np.pi
    xs = (lon / (2.0 * np.pi) + 0.5) * (width - 1)
    whole = np.rint(xs)
    xs = np.where(np.abs(xs - whole) < 1e-9, whole, xs)
    x0 = np.floor(xs).astype(np.intp)
    w = xs - x0
    x0 %= width
    if not w.any():
        return pano[:, x0].copy()
    shape = (1, width) + (1,) * (pano.ndim - 2)
    w = w.reshape(shape)
    left = pano[:, x0].astype(np.float64)
    right = pano[:, (x0 + 1) % width].astype(np.float64)
    blended = left + (right - left) * w
    return (np.rint(blended) if np.issubdtype(pano.dtype, np.integer) else blended).astype(pano.dtype)
