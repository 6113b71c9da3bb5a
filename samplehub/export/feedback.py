"""Reviewers' accept/reject decisions on returned samples: the ``feedback`` Delta table.

Main paper, section 3.4.3: supplementary samples the user filters out are recorded as
feedback, a reference for refining the image feature model. Rows are keyed by the query
id (:func:`samplehub.export.spec.query_id`), append-only, one atomic Delta commit per
call; a sample's latest decision for a query wins. A sample rejected for a query is never
suggested again for it (the builder drops it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from samplehub.catalog import Catalog
from samplehub.errors import ConfigError, SampleNotFoundError

Verdict = Literal["accept", "reject"]
VERDICTS: tuple[str, ...] = ("accept", "reject")


@dataclass(frozen=True)
class Decision:
    """One reviewer decision.

    Attributes:
        sample_id: the reviewed sample.
        decision: ``accept`` or ``reject``.
        label: the query label the sample was returned for.
        kind: ``exact`` or ``supplementary``, as it was returned.
    """

    sample_id: int
    decision: Verdict
    label: str | None = None
    kind: str | None = None


def record_feedback(
    catalog: Catalog, spec_id: str, decisions: Sequence[Decision], who: str = "anonymous"
) -> int:
    """Append decisions for the query ``spec_id`` in one commit; returns the row count.

    Raises:
        ConfigError: an empty ``spec_id`` or an unknown decision.
        SampleNotFoundError: a sample id that is not in the catalog.
    """
    if not spec_id:
        raise ConfigError("feedback needs the spec_id (query id) the samples were returned for")
    bad = sorted({d.decision for d in decisions} - set(VERDICTS))
    if bad:
        raise ConfigError(f"feedback decision must be one of {VERDICTS}, got {bad}")
    if not decisions:
        return 0
    ids = [d.sample_id for d in decisions]
    found = catalog.read(
        "samples",
        columns=["sample_id", "dataset"],
        filter_expression=pc.field("sample_id").isin(ids),
    ).to_pydict()
    dataset_of = dict(zip(found["sample_id"], found["dataset"], strict=True))
    missing = sorted(set(ids) - set(dataset_of))
    if missing:
        raise SampleNotFoundError(
            f"feedback names samples {missing[:10]} that are not in the catalog at {catalog.root}"
        )
    now = datetime.now(UTC)
    rows = [
        {
            "spec_id": spec_id,
            "dataset": dataset_of[d.sample_id],
            "sample_id": d.sample_id,
            "label": d.label,
            "kind": d.kind,
            "decision": d.decision,
            "who": who,
            "at": now,
        }
        for d in decisions
    ]
    catalog.append("feedback", pa.Table.from_pylist(rows))
    return len(rows)


def feedback_rows(catalog: Catalog, spec_id: str | None = None) -> pd.DataFrame:
    """Every feedback row (of one query when ``spec_id`` is given), oldest first."""
    expression = None if spec_id is None else pc.field("spec_id") == spec_id
    frame = catalog.read("feedback", filter_expression=expression).to_pandas()
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def latest_decisions(catalog: Catalog, spec_id: str) -> dict[int, str]:
    """``{sample_id: decision}`` with each sample's latest decision for ``spec_id``."""
    frame = feedback_rows(catalog, spec_id)
    return dict(zip(frame["sample_id"].astype(int), frame["decision"], strict=True))


def rejected_ids(catalog: Catalog, spec_id: str) -> set[int]:
    """Samples whose latest decision for ``spec_id`` is ``reject``."""
    return {s for s, d in latest_decisions(catalog, spec_id).items() if d == "reject"}


RECENT = object()
"""The stamp of a table read too soon after its last commit to be cached on."""
RECENT_NS = 2_000_000_000


class Rejections:
    """Every query's rejected samples, read once per version of the ``feedback`` table.

    A server answers each query without the samples rejected for it; reading the Delta
    table per query costs milliseconds of every request, while the table changes only
    when a reviewer records feedback. This reads all of it when its version changed (the
    log folder's mtime on local storage, the Delta version on object storage) and
    answers from memory until the next change, so a decision recorded by any process is
    seen by the next query.

    Args:
        catalog: the catalog holding the ``feedback`` table.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._stamp: object = object()  # equal to no real stamp: the first call reads
        self._rejected: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def of(self, spec_id: str) -> set[int]:
        """Samples whose latest decision for ``spec_id`` is ``reject`` (as :func:`rejected_ids`)."""
        stamp = self._version()
        with self._lock:
            if stamp != self._stamp or self._stamp is RECENT:
                frame = feedback_rows(self.catalog)
                latest = frame.groupby(["spec_id", "sample_id"], sort=False).tail(1)
                rejected = latest[latest["decision"] == "reject"]
                self._rejected = {
                    str(spec): set(group["sample_id"].astype(int).tolist())
                    for spec, group in rejected.groupby("spec_id", sort=False)
                }
                # A folder's mtime moves in steps of the kernel's clock tick, so a second
                # commit within the tick of the one just read would leave it unchanged; a
                # stamp that recent is not trusted, and the next call reads again.
                recent = isinstance(stamp, int) and time.time_ns() - stamp < RECENT_NS
                self._stamp = RECENT if recent else stamp
            return set(self._rejected.get(spec_id, ()))

    def _version(self) -> object:
        """A value that changes with every commit to the feedback table (None: no table)."""
        uri = self.catalog.uri("feedback")
        if "://" not in uri or uri.startswith("file://"):
            try:
                return os.stat(Path(uri.removeprefix("file://")) / "_delta_log").st_mtime_ns
            except FileNotFoundError:
                return None
        table = self.catalog.table("feedback")
        return None if table is None else table.version()


def export_feedback(catalog: Catalog, path: str | Path, spec_id: str | None = None) -> Path:
    """Write latest decisions joined with the samples' labels, for model refinement.

    One row per (query, sample): ``spec_id, sample_id, dataset, relpath, label, kind,
    decision, who, at, labels, unified_labels, zarr_array, zarr_index``; rejected
    supplementary samples are the hard negatives of their query label. ``.csv`` writes
    CSV (lists joined with ``|``), anything else Parquet.

    Returns:
        The written file.
    """
    path = Path(path)
    frame = feedback_rows(catalog, spec_id)
    latest = frame.drop_duplicates(["spec_id", "sample_id"], keep="last")
    ids = latest["sample_id"].astype(np.int64).tolist()
    samples = catalog.read(
        "samples",
        columns=["sample_id", "relpath", "labels", "unified_labels", "zarr_array", "zarr_index"],
        filter_expression=pc.field("sample_id").isin(ids),
    ).to_pandas()
    joined = latest.merge(samples, on="sample_id", how="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        for column in ("labels", "unified_labels"):
            joined[column] = joined[column].map(join_list)
        joined.to_csv(path, index=False)
    else:
        joined.to_parquet(path, index=False)
    return path


def join_list(values: object) -> str:
    """``["a", "b"]`` -> ``"a|b"`` for CSV cells (missing -> empty)."""
    if values is None or isinstance(values, float):
        return ""
    return "|".join(str(v) for v in values)  # type: ignore[attr-defined]
