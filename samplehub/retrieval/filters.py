"""Step 1 of the query: spatial, temporal and attribute filters (main paper, section 3.4).

"For spatial constraints, efficient spatial retrieval is achieved using a pre-constructed
quadtree and Hilbert indexing": a bbox goes through the snapshot's Hilbert-sorted index
and the exact bbox test (:class:`samplehub.index.spatial.HilbertIndex`), a polygon
through ``sedonadb`` (:func:`samplehub.index.spatial.polygon_filter`). Samples without
georeference never match a spatial filter; samples without a time never match a time
range.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from samplehub.errors import DatasetNotFoundError, QueryError
from samplehub.index.spatial import polygon_filter
from samplehub.retrieval.snapshot import SampleSnapshot
from samplehub.retrieval.types import QuerySpec


def validate_spec(spec: QuerySpec) -> None:
    """Refuse malformed queries with a message naming the field.

    Raises:
        QueryError: bad ``k``, ``exact_limit``, ``bbox``, ``time_range``, thresholds or
            ``index``.
    """
    if spec.k < 1:
        raise QueryError(f"k must be >= 1; got {spec.k}")
    if spec.exact_limit is not None and spec.exact_limit < 0:
        raise QueryError(f"exact_limit must be >= 0 or None; got {spec.exact_limit}")
    if spec.bbox is not None:
        if len(spec.bbox) != 4 or not (
            spec.bbox[0] <= spec.bbox[2] and spec.bbox[1] <= spec.bbox[3]
        ):
            raise QueryError(
                f"bbox must be (minx, miny, maxx, maxy) with min <= max; got {spec.bbox}"
            )
    if spec.time_range is not None and _utc(spec.time_range[0]) > _utc(spec.time_range[1]):
        raise QueryError(f"time_range start is after its end: {spec.time_range}")
    if spec.max_label_distance is not None and spec.max_label_distance < 0:
        raise QueryError(f"max_label_distance must be >= 0; got {spec.max_label_distance}")
    if spec.index not in ("auto", "ivfpq", "hash", "exact"):
        raise QueryError(f"index must be auto, ivfpq, hash or exact; got {spec.index!r}")


def filter_rows(snapshot: SampleSnapshot, spec: QuerySpec) -> np.ndarray | None:
    """Rows that pass every step-1 constraint of ``spec``.

    Args:
        snapshot: the samples.
        spec: the query (labels are not looked at here).

    Returns:
        Boolean mask (n,), or None when ``spec`` sets no step-1 constraint (every row
        passes; callers skip the per-row work).

    Raises:
        DatasetNotFoundError: a dataset filter names a dataset the catalog does not hold.
        QueryError: an invalid polygon.
    """
    masks = []
    if spec.datasets is not None:
        _require_datasets(snapshot.datasets, spec.datasets)
        masks.append(_in_codes(snapshot.dataset, snapshot.datasets, spec.datasets))
    if spec.sensors is not None:
        masks.append(_in_codes(snapshot.sensor, snapshot.sensors, spec.sensors))
    if spec.time_range is not None:
        start, end = (np.datetime64(_utc(t).replace(tzinfo=None), "us") for t in spec.time_range)
        masks.append((snapshot.time >= start) & (snapshot.time <= end))
    if spec.bbox is not None or spec.polygon_wkt is not None:
        masks.append(_spatial(snapshot, spec))
    return np.logical_and.reduce(masks) if masks else None


def describe_filter(spec: QuerySpec) -> dict[str, object]:
    """The step-1 constraints of ``spec`` as JSON-ready values (for the plan)."""
    return {
        "bbox": list(spec.bbox) if spec.bbox else None,
        "polygon": spec.polygon_wkt,
        "time_range": [_utc(t).isoformat() for t in spec.time_range] if spec.time_range else None,
        "datasets": list(spec.datasets) if spec.datasets is not None else None,
        "sensors": list(spec.sensors) if spec.sensors is not None else None,
    }


def _utc(t: datetime) -> datetime:
    """``t`` in UTC; naive times are taken as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _require_datasets(known: tuple[str, ...], wanted: tuple[str, ...]) -> None:
    """Raise DatasetNotFoundError for dataset names the catalog does not hold."""
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise DatasetNotFoundError(
            f"dataset(s) {unknown} are not in the catalog (known: {', '.join(known) or 'none'}); "
            "ingest them with `samplehub ingest PATH --name NAME`"
        )


def _in_codes(codes: np.ndarray, names: tuple[str, ...], wanted: tuple[str, ...]) -> np.ndarray:
    """Rows whose code names one of ``wanted``."""
    wanted_codes = [i for i, name in enumerate(names) if name in set(wanted)]
    return np.isin(codes, np.asarray(wanted_codes, dtype=codes.dtype))


def _spatial(snapshot: SampleSnapshot, spec: QuerySpec) -> np.ndarray:
    """Rows inside the bbox and the polygon (Hilbert pruning + exact tests)."""
    geo: pa.Table = snapshot.geo
    if spec.bbox is not None:
        geo = geo.take(pa.array(snapshot.spatial.select(spec.bbox)))
    if spec.polygon_wkt is not None:
        try:
            geo = polygon_filter(geo, spec.polygon_wkt)
        except ValueError as exc:
            raise QueryError(f"polygon_wkt: {exc}") from exc
    keep = np.zeros(len(snapshot), dtype=bool)
    keep[geo.column("row").to_numpy()] = True
    return keep
