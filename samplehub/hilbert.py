"""Spatial keys: a Hilbert-curve index over lon/lat (main paper, section 3.1).

The paper indexes samples with a quadtree plus a Hilbert curve. A Hilbert key of the
bbox centre on a ``2**order`` grid keeps nearby samples close in key order, so sorting
the catalog by key lets range filters prune files and row groups; the bbox columns then
give the exact test.
"""

from __future__ import annotations

import numpy as np

HILBERT_ORDER = 16


def hilbert_key(lon: np.ndarray, lat: np.ndarray, order: int = HILBERT_ORDER) -> np.ndarray:
    """Hilbert-curve distance of points on a ``2**order`` x ``2**order`` lon/lat grid.

    The standard iterative xy->d mapping, vectorised: at each level from the coarsest,
    add the quadrant's offset ``s*s*((3*rx) ^ ry)`` and rotate the sub-square.

    Args:
        lon: longitudes in degrees, shape (n,).
        lat: latitudes in degrees, shape (n,).
        order: bits per axis; keys lie in ``[0, 4**order)``.

    Returns:
        int64 keys, shape (n,).
    """
    n = np.int64(1) << order
    x = np.clip(((np.asarray(lon, float) + 180.0) / 360.0 * n).astype(np.int64), 0, n - 1)
    y = np.clip(((np.asarray(lat, float) + 90.0) / 180.0 * n).astype(np.int64), 0, n - 1)
    d = np.zeros_like(x)
    s = n >> 1
    while s > 0:
        rx = ((x & s) > 0).astype(np.int64)
        ry = ((y & s) > 0).astype(np.int64)
        d += s * s * ((3 * rx) ^ ry)
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), s - 1 - x, x)
        swap_y = np.where(flip & (rx == 1), s - 1 - y, y)
        x, y = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s >>= 1
    return d


def hilbert_range_for_bbox(
    bbox: tuple[float, float, float, float], order: int = 8
) -> list[tuple[int, int]]:
    """Key ranges (at ``HILBERT_ORDER``) of the coarse cells that a query bbox touches.

    The query box is covered by cells of a ``2**order`` grid; each cell is one contiguous
    run of fine keys. Adjacent runs are merged. Used to prune before the exact bbox test.
    """
    minx, miny, maxx, maxy = bbox
    n = 1 << order
    cx = np.arange(int((minx + 180) / 360 * n), min(int((maxx + 180) / 360 * n), n - 1) + 1)
    cy = np.arange(int((miny + 90) / 180 * n), min(int((maxy + 90) / 180 * n), n - 1) + 1)
    gx, gy = np.meshgrid(cx, cy)
    centres_lon = (gx.ravel() + 0.5) / n * 360 - 180
    centres_lat = (gy.ravel() + 0.5) / n * 180 - 90
    coarse = np.unique(hilbert_key(centres_lon, centres_lat, order))
    shift = 2 * (HILBERT_ORDER - order)
    ranges: list[tuple[int, int]] = []
    for c in coarse.tolist():
        lo, hi = c << shift, ((c + 1) << shift) - 1
        if ranges and ranges[-1][1] + 1 == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges
