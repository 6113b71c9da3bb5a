"""Spatial pre-filter: Hilbert-key pruning, exact bbox test, optional polygon predicate.

Main paper, section 3.4 (step 1 of the query): "for spatial constraints, efficient spatial
retrieval is achieved using a pre-constructed quadtree and Hilbert indexing". The catalog
stores per sample its bbox (``minx, miny, maxx, maxy``, EPSG:4326) and the Hilbert key of
the bbox centre (``hilbert``, :func:`samplehub.hilbert.hilbert_key`). A query box is
covered by quadtree cells; each cell is one contiguous run of Hilbert keys, so rows whose
key falls in none of the runs are pruned without touching their geometry. Keys describe
centres, so the query box is first grown by the largest sample half-extent: a sample that
overlaps the box but whose centre lies outside is never pruned. The survivors get the
exact bbox-intersection test, and optionally a polygon predicate in ``sedonadb``.

Frames are pandas DataFrames or pyarrow Tables; the result has the input's type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from samplehub.errors import OptionalDependencyError
from samplehub.hilbert import HILBERT_ORDER, hilbert_range_for_bbox

BBox = tuple[float, float, float, float]
Frame = TypeVar("Frame", pd.DataFrame, pa.Table)
BBOX_COLUMNS = ("minx", "miny", "maxx", "maxy")
WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)
CELLS_PER_AXIS = 4  # the covering grid is chosen so the query spans about this many cells


def _column(frame: pd.DataFrame | pa.Table, name: str) -> np.ndarray:
    """One column of ``frame`` as a numpy array, or a KeyError naming it."""
    names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    if name not in names:
        raise KeyError(f"the sample frame has no column {name!r}; it has {names}")
    if isinstance(frame, pa.Table):
        return np.asarray(frame.column(name).to_numpy())
    return frame[name].to_numpy()


def _take(frame: Frame, mask: np.ndarray) -> Frame:
    """Rows of ``frame`` where ``mask`` is True, keeping the frame type."""
    if isinstance(frame, pa.Table):
        return frame.filter(pa.array(mask))
    return frame[mask]


def _check_bbox(bbox: BBox) -> BBox:
    """``bbox`` as four floats with min <= max, or a ValueError."""
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (minx, miny, maxx, maxy); got {bbox!r}")
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    if not (minx <= maxx and miny <= maxy):
        raise ValueError(f"bbox must have minx <= maxx and miny <= maxy; got {bbox!r}")
    return minx, miny, maxx, maxy


def covering_order(bbox: BBox) -> int:
    """Quadtree level whose cells make the query box span about ``CELLS_PER_AXIS`` cells.

    Args:
        bbox: the (grown) query box.

    Returns:
        A level in [0, HILBERT_ORDER].
    """
    span = max(bbox[2] - bbox[0], (bbox[3] - bbox[1]) * 2.0, 1e-9)  # lat cells are half as tall
    return int(np.clip(math.floor(math.log2(360.0 * CELLS_PER_AXIS / span)), 0, HILBERT_ORDER))


def _grown(bbox: BBox, half_w: float, half_h: float) -> BBox | None:
    """``bbox`` grown by the largest sample half-extents (keys are centres), or None if empty."""
    minx, miny, maxx, maxy = bbox
    grown = (
        max(minx - half_w, WORLD[0]),
        max(miny - half_h, WORLD[1]),
        min(maxx + half_w, WORLD[2]),
        min(maxy + half_h, WORLD[3]),
    )
    return None if grown[0] > grown[2] or grown[1] > grown[3] else grown


def _key_ranges(grown: BBox) -> np.ndarray:
    """(r, 2) inclusive Hilbert key runs of the quadtree cells covering ``grown``."""
    return np.asarray(hilbert_range_for_bbox(grown, covering_order(grown)), dtype=np.int64)


def hilbert_candidates(frame: pd.DataFrame | pa.Table, bbox: BBox) -> np.ndarray:
    """Rows that Hilbert pruning keeps for ``bbox`` (a superset of the intersecting rows).

    Args:
        frame: samples with ``minx, miny, maxx, maxy, hilbert`` columns.
        bbox: query box (minx, miny, maxx, maxy) in degrees.

    Returns:
        Boolean mask (n,).
    """
    bbox = _check_bbox(bbox)
    if len(frame) == 0:
        return np.zeros(0, dtype=bool)
    half_w = float(np.max(_column(frame, "maxx") - _column(frame, "minx"))) / 2.0
    half_h = float(np.max(_column(frame, "maxy") - _column(frame, "miny"))) / 2.0
    grown = _grown(bbox, half_w, half_h)
    if grown is None:
        return np.zeros(len(frame), dtype=bool)
    ranges = _key_ranges(grown)
    keys = _column(frame, "hilbert").astype(np.int64)
    slot = np.searchsorted(ranges[:, 0], keys, side="right") - 1
    return (slot >= 0) & (keys <= ranges[np.clip(slot, 0, None), 1])


@dataclass(frozen=True)
class HilbertIndex:
    """Samples sorted by Hilbert key, so a query box reads a few contiguous runs.

    The "pre-constructed quadtree and Hilbert indexing" of section 3.4 built once per
    catalog snapshot: each quadtree cell covering the (grown) query box is one run of keys,
    found by binary search in the sorted keys, and only the rows in those runs get the exact
    bbox test. A query then costs about the number of rows near the box, where a scan of
    the key column costs the whole catalog (50 ms at 1M samples).

    Attributes:
        order: positions of the source frame's rows, by ascending key.
        keys: (n,) the sorted keys.
        box: (n, 4) ``minx, miny, maxx, maxy`` in key order.
        half_w, half_h: the largest sample half-extents, which the query box grows by.
    """

    order: np.ndarray
    keys: np.ndarray
    box: np.ndarray
    half_w: float
    half_h: float

    @classmethod
    def of(cls, frame: pd.DataFrame | pa.Table) -> HilbertIndex:
        """Index ``frame`` (columns ``minx, miny, maxx, maxy, hilbert``).

        Raises:
            KeyError: a required column is missing.
        """
        keys = _column(frame, "hilbert").astype(np.int64)
        order = np.argsort(keys, kind="stable")
        box = np.stack([_column(frame, c).astype(np.float64) for c in BBOX_COLUMNS], axis=1)
        half = (box[:, 2:] - box[:, :2]).max(axis=0) / 2.0 if len(box) else np.zeros(2)
        return cls(order, keys[order], box[order], float(half[0]), float(half[1]))

    def select(self, bbox: BBox) -> np.ndarray:
        """Positions in the source frame of the rows whose bbox intersects ``bbox``, ascending.

        Raises:
            ValueError: on a malformed bbox.
        """
        minx, miny, maxx, maxy = _check_bbox(bbox)
        grown = _grown((minx, miny, maxx, maxy), self.half_w, self.half_h)
        if grown is None or len(self.keys) == 0:
            return np.zeros(0, dtype=np.int64)
        ranges = _key_ranges(grown)
        lo = np.searchsorted(self.keys, ranges[:, 0], side="left")
        hi = np.searchsorted(self.keys, ranges[:, 1], side="right")
        runs = [np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        if not runs:
            return np.zeros(0, dtype=np.int64)
        near = np.concatenate(runs)
        box = self.box[near]
        hit = (box[:, 0] <= maxx) & (box[:, 2] >= minx) & (box[:, 1] <= maxy) & (box[:, 3] >= miny)
        return np.sort(self.order[near[hit]])


def bbox_filter(frame: Frame, bbox: BBox) -> Frame:
    """Samples whose bbox intersects ``bbox``: Hilbert pruning, then the exact test.

    Builds a :class:`HilbertIndex` of ``frame`` for this one query; a caller that filters
    the same samples again keeps the index instead (the query's snapshot does).

    Args:
        frame: samples with ``minx, miny, maxx, maxy, hilbert`` columns (pandas or arrow).
        bbox: query box (minx, miny, maxx, maxy), EPSG:4326 degrees.

    Returns:
        The intersecting rows, same type as ``frame``.

    Raises:
        KeyError: if a required column is missing.
        ValueError: on a malformed bbox.
    """
    _check_bbox(bbox)
    keep = np.zeros(len(frame), dtype=bool)
    keep[HilbertIndex.of(frame).select(bbox)] = True
    return _take(frame, keep)


def polygon_filter(frame: Frame, polygon_wkt: str, geometry_column: str = "footprint") -> Frame:
    """Samples whose footprint intersects a polygon, evaluated by ``sedonadb``.

    The polygon's bounds first go through :func:`bbox_filter`, so sedonadb only sees
    candidates; ``ST_Intersects`` then tests the footprints (WKB, EPSG:4326).

    Args:
        frame: samples with the bbox/hilbert columns and a WKB ``geometry_column``.
        polygon_wkt: the query polygon as WKT, lon/lat.
        geometry_column: column holding footprint WKB.

    Returns:
        The intersecting rows, same type as ``frame``.

    Raises:
        OptionalDependencyError: if ``sedonadb`` is not installed.
        ValueError: if ``polygon_wkt`` is not a valid polygon.
    """
    try:
        import sedonadb
    except ImportError as exc:
        raise OptionalDependencyError("sedonadb", "spatial") from exc
    import shapely

    try:
        polygon = shapely.from_wkt(polygon_wkt)
    except shapely.errors.GEOSException as exc:
        raise ValueError(f"polygon_wkt is not valid WKT: {polygon_wkt!r}") from exc
    if polygon.geom_type not in ("Polygon", "MultiPolygon") or not polygon.is_valid:
        raise ValueError(f"polygon_wkt must be a valid (multi)polygon; got {polygon.geom_type}")
    candidates = bbox_filter(frame, tuple(polygon.bounds))
    if len(candidates) == 0:
        return candidates
    table = pa.table(
        {
            "row": pa.array(np.arange(len(candidates), dtype=np.int64)),
            "wkb": pa.array(_column(candidates, geometry_column), type=pa.binary()),
        }
    )
    sd = sedonadb.connect()
    sd.create_data_frame(table).to_view("samplehub_candidates")
    query = sd.sql(
        "SELECT row FROM samplehub_candidates WHERE "
        f"ST_Intersects(ST_GeomFromWKB(wkb), ST_GeomFromText('{polygon.wkt}'))"
    )
    hits = pa.table(query)  # Arrow C stream: an int64 column, no geoarrow types needed
    keep = np.zeros(len(candidates), dtype=bool)
    keep[np.asarray(hits.column("row").to_numpy(), dtype=np.int64)] = True
    return _take(candidates, keep)
