"""Spatial pre-filter: Hilbert pruning never drops an intersecting sample, and prunes."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from samplehub.errors import OptionalDependencyError
from samplehub.hilbert import HILBERT_ORDER, hilbert_key
from samplehub.index.spatial import HilbertIndex, bbox_filter, hilbert_candidates, polygon_filter


def sample_frame(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Random sample footprints worldwide, 0.01 to 2 degrees wide, Hilbert key of centres."""
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(-179, 179, n), rng.uniform(-89, 89, n)
    hw, hh = rng.uniform(0.005, 1.0, n), rng.uniform(0.005, 1.0, n)
    frame = pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "minx": cx - hw,
            "miny": cy - hh,
            "maxx": cx + hw,
            "maxy": cy + hh,
        }
    )
    frame["hilbert"] = hilbert_key(cx, cy)
    frame["footprint"] = [
        shapely.box(*b).wkb for b in frame[["minx", "miny", "maxx", "maxy"]].to_numpy()
    ]
    return frame


def brute_force(frame: pd.DataFrame, bbox: tuple[float, float, float, float]) -> set[int]:
    minx, miny, maxx, maxy = bbox
    hit = (frame.minx <= maxx) & (frame.maxx >= minx) & (frame.miny <= maxy) & (frame.maxy >= miny)
    return set(frame.sample_id[hit])


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sample_frame()


def test_hilbert_prefix_property() -> None:
    # A level-l quadtree cell must be one contiguous key run at the fine level.
    order = 5
    side = 1 << order
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    lon = (gx.ravel() + 0.5) / side * 360 - 180
    lat = (gy.ravel() + 0.5) / side * 180 - 90
    fine = hilbert_key(lon, lat, order)
    coarse = hilbert_key(lon, lat, order - 2)
    np.testing.assert_array_equal(fine >> 4, coarse)


@pytest.mark.parametrize(
    "bbox",
    [
        (10.0, 40.0, 12.0, 42.0),
        (-180.0, -90.0, -170.0, -80.0),
        (0.1, 0.1, 0.2, 0.2),
        (-60.0, -30.0, 60.0, 30.0),
        (179.0, 89.0, 180.0, 90.0),
    ],
)
def test_bbox_filter_equals_brute_force(
    frame: pd.DataFrame, bbox: tuple[float, float, float, float]
) -> None:
    assert set(bbox_filter(frame, bbox).sample_id) == brute_force(frame, bbox)


def test_samples_overlapping_with_centre_outside_are_kept(frame: pd.DataFrame) -> None:
    bbox = (0.0, 0.0, 30.0, 30.0)
    cx = (frame.minx + frame.maxx) / 2
    cy = (frame.miny + frame.maxy) / 2
    outside = ~((cx >= 0) & (cx <= 30) & (cy >= 0) & (cy <= 30))
    expected = brute_force(frame, bbox) & set(frame.sample_id[outside])
    assert expected  # the fixture has such samples
    assert expected <= set(bbox_filter(frame, bbox).sample_id)


def test_one_hilbert_index_answers_many_boxes(frame: pd.DataFrame) -> None:
    index = HilbertIndex.of(frame)  # built once, as the query snapshot keeps it
    rng = np.random.default_rng(7)
    for _ in range(200):
        x0, y0 = rng.uniform(-180, 170), rng.uniform(-90, 85)
        w, h = rng.uniform(0, 40) ** 2 / 40, rng.uniform(0, 20) ** 2 / 20
        bbox = (x0, y0, min(x0 + w, 180.0), min(y0 + h, 90.0))
        found = index.select(bbox)
        assert np.all(np.diff(found) > 0)  # positions, ascending, once each
        assert set(frame.sample_id.to_numpy()[found]) == brute_force(frame, bbox)


def test_hilbert_pruning_prunes(frame: pd.DataFrame) -> None:
    keep = hilbert_candidates(frame, (10.0, 40.0, 12.0, 42.0))
    assert keep.sum() < 0.01 * len(frame)


def test_arrow_tables_work_like_pandas(frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    bbox = (-20.0, -10.0, 20.0, 10.0)
    out = bbox_filter(table, bbox)
    assert isinstance(out, pa.Table)
    assert set(out.column("sample_id").to_pylist()) == brute_force(frame, bbox)


def test_bad_input_is_reported(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="minx <= maxx"):
        bbox_filter(frame, (5.0, 0.0, 1.0, 1.0))
    with pytest.raises(KeyError, match="hilbert"):
        bbox_filter(frame.drop(columns="hilbert"), (0.0, 0.0, 1.0, 1.0))
    assert len(bbox_filter(frame.iloc[:0], (0.0, 0.0, 1.0, 1.0))) == 0


def test_hilbert_keys_fit_the_catalog_order() -> None:
    keys = hilbert_key(np.array([-180.0, 180.0]), np.array([-90.0, 90.0]))
    assert keys.min() >= 0 and keys.max() < 4**HILBERT_ORDER


def test_polygon_filter_without_sedonadb(
    monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame
) -> None:
    monkeypatch.setitem(sys.modules, "sedonadb", None)
    with pytest.raises(OptionalDependencyError, match="sedonadb"):
        polygon_filter(frame, "POLYGON ((0 0, 1 0, 1 1, 0 0))")


def test_polygon_filter_with_sedonadb(frame: pd.DataFrame) -> None:
    pytest.importorskip("sedonadb", reason="sedonadb not installed (pip install sedonadb)")
    triangle = shapely.Polygon([(0, 0), (30, 0), (0, 30)])
    out = polygon_filter(frame, triangle.wkt)
    boxes = shapely.from_wkb(frame.footprint.to_numpy())
    expected = set(frame.sample_id[shapely.intersects(boxes, triangle)])
    assert expected and set(out.sample_id) == expected
    with pytest.raises(ValueError, match="polygon"):
        polygon_filter(frame, "POINT (1 1)")
