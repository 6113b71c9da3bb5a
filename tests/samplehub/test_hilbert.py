"""Hilbert keys: a bijection on the grid, local, and prefix-consistent across orders."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from samplehub.hilbert import HILBERT_ORDER, hilbert_key, hilbert_range_for_bbox


def cell_centres(order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = 1 << order
    gx, gy = np.meshgrid(np.arange(n), np.arange(n))
    lon = (gx.ravel() + 0.5) / n * 360 - 180
    lat = (gy.ravel() + 0.5) / n * 180 - 90
    return lon, lat, gx.ravel(), gy.ravel()


def test_keys_are_a_bijection_on_the_grid() -> None:
    lon, lat, _, _ = cell_centres(4)
    keys = hilbert_key(lon, lat, order=4)
    assert sorted(keys.tolist()) == list(range(256))


def test_consecutive_keys_are_neighbouring_cells() -> None:
    lon, lat, gx, gy = cell_centres(5)
    order = np.argsort(hilbert_key(lon, lat, order=5))
    steps = np.abs(np.diff(gx[order])) + np.abs(np.diff(gy[order]))
    assert np.all(steps == 1)


def test_coarse_key_is_a_prefix_of_the_fine_key() -> None:
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 500), rng.uniform(-90, 90, 500)
    fine = hilbert_key(lon, lat, HILBERT_ORDER)
    coarse = hilbert_key(lon, lat, 8)
    assert np.array_equal(fine >> (2 * (HILBERT_ORDER - 8)), coarse)


def test_bbox_ranges_cover_every_point_inside() -> None:
    rng = np.random.default_rng(1)
    bbox = (10.0, 45.0, 12.5, 47.0)
    lon, lat = rng.uniform(10, 12.5, 300), rng.uniform(45, 47, 300)
    keys = hilbert_key(lon, lat)
    ranges = hilbert_range_for_bbox(bbox)
    inside = np.zeros(len(keys), bool)
    for lo, hi in ranges:
        inside |= (keys >= lo) & (keys <= hi)
    assert inside.all()
    far = hilbert_key(np.array([-100.0]), np.array([-40.0]))
    assert not any(lo <= far[0] <= hi for lo, hi in ranges)


lons = st.floats(-180.0, 180.0, allow_nan=False)
lats = st.floats(-90.0, 90.0, allow_nan=False)


@st.composite
def bbox_and_points(draw: st.DrawFn) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """A bbox anywhere on the globe (edges included) and points inside it."""
    x0, x1 = sorted((draw(lons), draw(lons)))
    y0, y1 = sorted((draw(lats), draw(lats)))
    n = draw(st.integers(1, 20))
    fx = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    fy = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    points = np.stack([np.clip(x0 + fx * (x1 - x0), x0, x1),
                       np.clip(y0 + fy * (y1 - y0), y0, y1)], axis=1)
    return (x0, y0, x1, y1), points


@settings(max_examples=300, deadline=None, derandomize=True)
@given(case=bbox_and_points(), order=st.integers(2, 10))
def test_any_bbox_ranges_cover_every_point_inside_it(
    case: tuple[tuple[float, float, float, float], np.ndarray], order: int
) -> None:
    bbox, points = case
    keys = hilbert_key(points[:, 0], points[:, 1])
    assert ((keys >= 0) & (keys < 4**HILBERT_ORDER)).all()
    ranges = hilbert_range_for_bbox(bbox, order=order)
    assert all(lo <= hi for lo, hi in ranges)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), "sorted, disjoint"
    covered = [any(lo <= k <= hi for lo, hi in ranges) for k in keys]
    assert all(covered), (bbox, points[~np.array(covered)])
