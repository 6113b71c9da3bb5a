"""Delta Lake tables of the catalog, read and written with delta-rs (``deltalake``).

Every write is one Delta commit, so a crash leaves the table as it was before the write;
re-runs are idempotent because callers append only ids the table does not hold yet.
Tables live under ``<home>/catalog/<table>`` (local disk by default, ``s3://`` at scale).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from samplehub.catalog import schema
from samplehub.errors import DatasetNotFoundError, SampleNotFoundError

log = logging.getLogger(__name__)

PART_FILE = re.compile(r"part-[0-9a-f]{32}\.parquet")  # the names Catalog.write_file gives

COMMIT_ATTEMPTS = 8
"""Tries of one write whose Delta commit lost a race (:meth:`Catalog.commit_with_retries`)."""
COMMIT_BACKOFF_S = 0.05
"""First wait before such a try; doubled each time, jittered by +-50 % so writers spread out."""


@dataclass
class DatasetInfo:
    """One row of the ``datasets`` registry."""

    dataset: str
    source_uri: str
    kind: str
    platform: str = "local"
    licence: str = ""
    citation: str = ""
    label_tree: str = '{"nodes": []}'
    n_found: int = 0
    n_samples: int = 0
    n_labels: int = 0
    n_quarantined: int = 0
    version: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class DataFile:
    """A Parquet part file written into a table's location but not yet committed.

    Small and picklable: a Spark executor writes the file and sends this back, and the
    driver commits every part of a run in one Delta transaction (:meth:`Catalog.commit_files`).
    """

    path: str
    """Relative to the table's root, as the Delta log records it."""
    size: int
    dataset: str
    rows: int
    stats: str
    """Delta's per-file statistics (JSON: numRecords, minValues, maxValues, nullCount)."""


CLUSTER_ROWS = 4096
"""Rows per file of a partition clustered by Hilbert key (:meth:`Catalog.cluster_by_hilbert`):
small enough that a city-sized bbox skips most of a large dataset's files, large enough that
reading a whole dataset stays a few dozen files."""

STATS_TYPES = (pa.types.is_integer, pa.types.is_floating, pa.types.is_string,
               pa.types.is_timestamp)
"""Column types whose min/max the part files record, as delta-rs does, for data skipping."""


def stat_value(value: Any) -> Any:
    """A min/max in the JSON form of Delta's statistics (timestamps as ISO-8601 UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return value


def file_stats(data: pa.Table) -> str:
    """Delta statistics of one file's rows: record count, and min, max and nulls per column."""
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name, column in zip(data.column_names, data.columns, strict=True):
        nulls[name] = column.null_count
        if column.null_count < len(column) and any(t(column.type) for t in STATS_TYPES):
            extremes = pc.min_max(column).as_py()
            minimum[name] = stat_value(extremes["min"])
            maximum[name] = stat_value(extremes["max"])
    return json.dumps({"numRecords": data.num_rows, "minValues": minimum,
                       "maxValues": maximum, "nullCount": nulls})


def sql_literal(value: str) -> str:
    """Quote a string for a delta-rs predicate."""
    return "'" + value.replace("'", "''") + "'"


def rows_with_label(column: pa.ChunkedArray, label: str) -> np.ndarray:
    """Row numbers whose list ``column`` contains ``label``."""
    flat = pc.is_in(pc.list_flatten(column), pa.array([label]))
    return pc.list_parent_indices(column).filter(flat).to_numpy()


class Catalog:
    """The ``samples``, ``quarantine`` and ``datasets`` tables under one root URI."""

    def __init__(
        self,
        root: str,
        storage_options: Mapping[str, str] | None = None,
        file_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.file_options = dict(file_options or {})
        """fsspec options of the same storage, for part files written outside delta-rs."""

    def uri(self, table: str) -> str:
        """Location of one table."""
        return f"{self.root}/{table}"

    def table(self, name: str) -> DeltaTable | None:
        """The Delta table ``name``, or ``None`` before its first write."""
        try:
            return DeltaTable(self.uri(name), storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def read(
        self,
        name: str,
        dataset: str | None = None,
        columns: Sequence[str] | None = None,
        filter_expression: pc.Expression | None = None,
    ) -> pa.Table:
        """Read a table (optionally one dataset partition and some columns) as Arrow."""
        declared: pa.Schema = getattr(schema, name.upper())
        table = self.table(name)
        if table is None:
            return declared.empty_table().select(list(columns) if columns else declared.names)
        expression = filter_expression
        if dataset is not None:
            by_dataset = pc.field("dataset") == dataset
            expression = by_dataset if expression is None else expression & by_dataset
        data = table.to_pyarrow_dataset()
        renamed = self.legacy_names(name, data.schema.names)
        stored = [renamed.get(c, c) for c in data.schema.names]
        wanted = list(columns) if columns else [*stored]
        if not columns:
            wanted += [n for n in declared.names if n not in wanted]
        absent = [c for c in wanted if c not in stored and c in declared.names]
        present = [c for c in wanted if c not in absent]
        if renamed:
            # A table written before a column was renamed (schema.RENAMED_COLUMNS): read the
            # partition, rename, then filter, so filters and columns use the declared names.
            by_dataset = None if dataset is None else pc.field("dataset") == dataset
            out = data.to_table(filter=by_dataset).rename_columns(stored)
            if filter_expression is not None:
                out = out.filter(filter_expression)
            out = out.select(present)
        else:
            out = data.to_table(columns=present, filter=expression)
        # Columns added to the schema after this table was written read as null
        # (see add_missing_columns); the next write adds them to the table.
        for column in absent:
            field = declared.field(column)
            out = out.append_column(field, pa.nulls(out.num_rows, field.type))
        return out.select(wanted) if absent else out

    def missing_columns(self, name: str, table: DeltaTable | None = None) -> list[str]:
        """Columns of the declared schema that the stored table lacks (written before them).

        Args:
            name: the table's name.
            table: the table if already open.
        """
        table = table or self.table(name)
        if table is None:
            return []
        names = table.schema().to_arrow().names
        renamed = self.legacy_names(name, names)
        stored = {renamed.get(n, n) for n in names}
        return [n for n in getattr(schema, name.upper()).names if n not in stored]

    @staticmethod
    def legacy_names(name: str, stored: Sequence[str]) -> dict[str, str]:
        """``{old: new}`` for the renamed columns (``schema.RENAMED_COLUMNS``) a table still has.

        Args:
            name: the table's name.
            stored: the column names of the stored table.
        """
        renames = schema.RENAMED_COLUMNS.get(name, {})
        return {old: new for old, new in renames.items() if old in stored and new not in stored}

    def rename_legacy_columns(self, name: str) -> dict[str, str]:
        """Rewrite a table that still has a renamed column under the new name, in one commit.

        Returns:
            ``{old: new}`` for the columns renamed (empty when the table is current or absent).
        """
        table = self.table(name)
        if table is None:
            return {}
        renamed = self.legacy_names(name, table.schema().to_arrow().names)
        if renamed:
            declared = getattr(schema, name.upper())
            data = self.read(name).select(declared.names).cast(declared)
            write_deltalake(
                self.uri(name),
                data,
                partition_by=["dataset"],
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=self.storage_options or None,
            )
        return renamed

    def add_missing_columns(self, name: str) -> list[str]:
        """Add the declared columns a table written by an older SampleHub lacks.

        They are nullable and were appended at the end of the declared schema, so the
        evolved table has the declared column order; old rows hold null in them.

        Returns:
            The names of the columns added (empty when the table is current or absent).
        """
        table = self.table(name)
        missing = self.missing_columns(name, table)
        if missing and table is not None:
            declared = getattr(schema, name.upper())
            table.alter.add_columns([Field.from_arrow(declared.field(n)) for n in missing])
        return missing

    def append(self, name: str, data: pa.Table) -> None:
        """Append rows in one commit, retried if it lost a race (:meth:`commit_with_retries`)."""
        if data.num_rows == 0:
            return

        def write() -> None:
            self.rename_legacy_columns(name)
            self.add_missing_columns(name)
            write_deltalake(
                self.uri(name),
                data.cast(getattr(schema, name.upper())),
                partition_by=["dataset"],
                mode="append",
                storage_options=self.storage_options or None,
            )

        self.commit_with_retries(name, write)

    def files(self, name: str) -> list[str]:
        """URIs of the data files of table ``name``'s current version (none before a write)."""
        table = self.table(name)
        return list(table.file_uris()) if table is not None else []

    def uncommitted_files(self, name: str, dataset: str) -> list[str]:
        """``dataset``'s part files under table ``name`` that no commit ever referenced.

        They are what a writer left that died between :meth:`write_file` and
        :meth:`commit_files`. Files that a later commit replaced are not among them: the
        log still names those, and Delta's ``vacuum`` removes them after its retention.
        Paths are the stored names relative to the table (the log percent-encodes them).
        """
        import fsspec

        partition = f"dataset={quote(dataset, safe='')}/"
        fs, root = fsspec.core.url_to_fs(self.uri(name), **self.file_options)
        # One listing of the dataset's partition, not of the whole table; only names that
        # write_file gives, so a file another writer named is never mistaken for ours.
        found = {path[len(root) + 1:] for path in fs.find(f"{root}/{partition}")
                 if PART_FILE.fullmatch(path.rsplit("/", 1)[-1])}
        table = self.table(name)
        if table is not None and found:
            # the log's paths are URIs (Delta protocol: percent-encoded) of the stored names
            found -= {unquote(path) for path in table.get_add_actions().column("path").to_pylist()}
            # vacuum's default mode lists the log's tombstones (a dry run: nothing goes)
            found -= set(table.vacuum(retention_hours=0, dry_run=True, full=False,
                                      enforce_retention_duration=False))
        return sorted(found)

    def drop_uncommitted_files(self, name: str, dataset: str) -> int:
        """Delete :meth:`uncommitted_files`; the caller holds the lock of their writers.

        Returns:
            The number of files deleted.
        """
        import fsspec

        paths = self.uncommitted_files(name, dataset)
        fs, root = fsspec.core.url_to_fs(self.uri(name), **self.file_options)
        for path in paths:
            fs.rm_file(f"{root}/{path}")
        if paths:
            log.info("%s: deleted %d uncommitted part files of %s", dataset, len(paths), name)
        return len(paths)

    def read_file(self, uri: str, columns: Sequence[str]) -> pa.Table:
        """Some columns of one data file of :meth:`files`, read where it lies (an executor).

        Partition columns are not in the files; read them with :meth:`read`.
        """
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **self.file_options)
        with fs.open(path, "rb") as data:
            return pq.read_table(data, columns=list(columns))

    def write_file(self, name: str, dataset: str, data: pa.Table) -> DataFile:
        """Write one Parquet part file of ``dataset``'s rows into table ``name``'s location.

        Nothing is committed: the file is invisible to readers until
        :meth:`commit_files` adds it, so a writer that dies leaves only an unreferenced file
        (Delta's ``vacuum`` removes those). The file holds the declared schema less the
        partition column, as the files delta-rs writes do.
        """
        import fsspec

        declared: pa.Schema = getattr(schema, name.upper())
        rows = data.cast(declared).drop_columns(["dataset"])
        relative = f"dataset={quote(dataset, safe='')}/part-{uuid.uuid4().hex}.parquet"  # PART_FILE
        fs, root = fsspec.core.url_to_fs(self.uri(name), **self.file_options)
        path = f"{root}/{relative}"
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as out:
            pq.write_table(rows, out, compression="snappy")
        return DataFile(path=relative, size=int(fs.size(path)), dataset=dataset,
                        rows=rows.num_rows, stats=file_stats(rows))

    def commit_files(self, name: str, files: Sequence[DataFile], replace: str | None = None
                     ) -> None:
        """Add part files written by :meth:`write_file` to table ``name`` in one commit.

        This is how executors that wrote their own outputs are committed by the driver:
        either every file becomes visible or none does. Retried if it lost a race
        (:meth:`commit_with_retries`).

        Args:
            name: the table.
            files: the part files.
            replace: a dataset whose rows the files replace (its old files leave the
                table in the same commit); None appends.
        """
        if not files:
            return
        declared: pa.Schema = getattr(schema, name.upper())
        now = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [
            AddAction(f.path, f.size, {"dataset": f.dataset}, now, True, f.stats) for f in files]

        def commit() -> None:
            table = self.table(name)
            if table is None:
                DeltaTable.create(self.uri(name), declared, mode="ignore", partition_by=["dataset"],
                                  storage_options=self.storage_options or None)
            self.rename_legacy_columns(name)
            self.add_missing_columns(name)
            table = self.table(name)
            assert table is not None
            if replace is None:
                table.create_write_transaction(actions, mode="append", schema=declared,
                                               partition_by=["dataset"])
            else:
                table.create_write_transaction(
                    actions, mode="overwrite", schema=declared, partition_by=["dataset"],
                    partition_filters=[("dataset", "=", replace)])

        self.commit_with_retries(name, commit)

    def cluster_by_hilbert(self, dataset: str, rows_per_file: int = CLUSTER_ROWS) -> int:
        """Rewrite ``dataset``'s ``samples`` rows sorted by Hilbert key, in one commit.

        Main paper, section 3.1: samples are indexed by quadtree and Hilbert curve. Sorted
        by key and cut into files of ``rows_per_file`` rows, each file covers one stretch
        of the curve, so its bbox statistics are tight and a bbox read
        (:meth:`bbox_expression`) opens only the files that can overlap (delta-rs hands the
        statistics to Arrow as each file's guarantee). Rows without a footprint sort last.
        The old files leave the table in the same commit (Delta ``overwrite`` of the
        partition), so readers see either layout, never both.

        Returns:
            The number of files the partition holds now (0 when it is empty).
        """
        rows = self.read("samples", dataset)
        if rows.num_rows == 0:
            return 0
        rows = rows.sort_by([("hilbert", "ascending"), ("sample_id", "ascending")])
        files = [self.write_file("samples", dataset, rows.slice(start, rows_per_file))
                 for start in range(0, rows.num_rows, rows_per_file)]
        self.commit_files("samples", files, replace=dataset)
        return len(files)

    @staticmethod
    def bbox_expression(bbox: tuple[float, float, float, float]) -> pc.Expression:
        """Rows whose bbox intersects ``bbox`` (minx, miny, maxx, maxy), as an Arrow filter."""
        minx, miny, maxx, maxy = bbox
        return ((pc.field("maxx") >= minx) & (pc.field("minx") <= maxx)
                & (pc.field("maxy") >= miny) & (pc.field("miny") <= maxy))

    def files_read(self, name: str, expression: pc.Expression) -> tuple[int, int]:
        """(files a read filtered by ``expression`` opens, files of the table): its pruning."""
        table = self.table(name)
        if table is None:
            return 0, 0
        data = table.to_pyarrow_dataset()
        return (sum(1 for _ in data.get_fragments(filter=expression)),
                sum(1 for _ in data.get_fragments()))

    def replace_partition(self, name: str, dataset: str, data: pa.Table) -> None:
        """Replace one dataset's rows in one atomic commit (Delta ``replaceWhere``).

        Written again when the commit loses a race (:meth:`commit_with_retries`): the
        dataset's rows are then ``data``, whatever a concurrent writer put there.
        """
        predicate = f"dataset = {sql_literal(dataset)}"
        table_schema = getattr(schema, name.upper())

        def write() -> None:
            if self.table(name) is None:
                rows = data if data.num_rows else table_schema.empty_table()
                write_deltalake(
                    self.uri(name),
                    rows.cast(table_schema),
                    partition_by=["dataset"],
                    mode="append",
                    storage_options=self.storage_options or None,
                )
                return
            self.rename_legacy_columns(name)
            self.add_missing_columns(name)
            write_deltalake(
                self.uri(name),
                data.cast(table_schema),
                partition_by=["dataset"],
                mode="overwrite",
                predicate=predicate,
                storage_options=self.storage_options or None,
            )

        self.commit_with_retries(name, write)

    @staticmethod
    def commit_with_retries(name: str, write: Callable[[], None]) -> None:
        """Run ``write`` (one Delta commit to table ``name``); run it again when it loses a race.

        delta-rs retries a commit that meets concurrent appends on its own, but only so
        often (``CommitProperties.max_commit_retries``, 15 by default), and never one that
        lost the table's creation: writers that all found no table each try to commit
        version 0, and all but one fail with ``CommitFailedError`` (protocol or metadata
        changed). A failed commit added nothing to the log (its data files stay
        unreferenced), so ``write`` runs again, up to ``COMMIT_ATTEMPTS`` times with a
        jittered backoff, against the table as the winner left it; its rows land once.
        These retries keep writes from different machines whole on object storage, where
        no lock is shared; processes of one machine may also take turns first
        (:meth:`samplehub.locks.WriterLocks.table`).

        Raises:
            CommitFailedError: the commit still lost after ``COMMIT_ATTEMPTS`` tries.
        """
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                write()
                return
            except CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                wait = COMMIT_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                log.info("a write to %s lost a commit race (%s); writing again in %.2f s",
                         name, exc, wait)
                time.sleep(wait)

    def sample_ids(self, dataset: str) -> np.ndarray:
        """Ids already catalogued for ``dataset`` (sorted int64)."""
        ids = self.read("samples", dataset, columns=["sample_id"]).column("sample_id")
        return np.sort(ids.to_numpy())

    def samples(
        self,
        dataset: str | None = None,
        label: str | None = None,
        limit: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Samples as a DataFrame, filtered by dataset and original or unified label."""
        if dataset is not None:
            self.dataset(dataset)
        wanted = list(columns) if columns else None
        read_columns = wanted and sorted({*wanted, "labels", "unified_labels"})
        table = self.read("samples", dataset, columns=read_columns)
        if label is not None:
            rows = np.unique(
                np.concatenate(
                    [rows_with_label(table.column(c), label) for c in ("labels", "unified_labels")]
                )
            )
            table = table.take(pa.array(rows, pa.int64()))
        if wanted:
            table = table.select(wanted)
        if limit is not None:
            table = table.slice(0, limit)
        return table.to_pandas()

    def sample(self, sample_id: int) -> dict[str, Any]:
        """One sample's catalog row."""
        table = self.read("samples", filter_expression=pc.field("sample_id") == sample_id)
        if table.num_rows == 0:
            raise SampleNotFoundError(
                f"sample {sample_id} is not in the catalog at {self.root}; "
                "list ids with `samplehub samples --dataset NAME`"
            )
        return table.slice(0, 1).to_pylist()[0]

    def quarantine(self, dataset: str | None = None) -> pd.DataFrame:
        """Quarantined samples with their reasons."""
        return self.read("quarantine", dataset).to_pandas()

    def datasets(self) -> pd.DataFrame:
        """The registry, one row per dataset."""
        return self.read("datasets").to_pandas().sort_values("dataset").reset_index(drop=True)

    def dataset(self, name: str) -> DatasetInfo:
        """One registry row.

        Raises:
            DatasetNotFoundError: ``name`` was never ingested.
        """
        rows = self.read("datasets", name).to_pylist()
        if not rows:
            known = ", ".join(self.datasets()["dataset"]) or "none yet"
            raise DatasetNotFoundError(
                f"dataset {name!r} is not in the catalog (known: {known}); "
                f"ingest it with `samplehub ingest PATH --name {name}`"
            )
        return DatasetInfo(**rows[0])

    def register_dataset(self, info: DatasetInfo) -> None:
        """Write one registry row (replacing the dataset's previous row atomically)."""
        info.updated_at = datetime.now(UTC)
        self.replace_partition("datasets", info.dataset, pa.Table.from_pylist([asdict(info)]))

    def label_tree_json(self, dataset: str) -> dict[str, Any]:
        """The registry's label tree of ``dataset`` as a dict ``{"nodes": [...]}``."""
        return json.loads(self.dataset(dataset).label_tree)  # type: ignore[no-any-return]
