"""Ingestion: a source's samples into the catalog and the image store (main paper, 3.2).

The work is split so that an executor (threads here, Spark tasks at scale) runs it
without a rewrite: :func:`write_part` decodes a part of the new files
(:func:`read_entry`, which never raises for a bad sample), writes their pixels at rows
fixed beforehand and their catalog rows (:func:`records_to_table`) as one Parquet part
file. :func:`ingest_dataset` is the driver: discover, skip ids already catalogued, give
each new file its row, run the parts, commit their files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samplehub.catalog import Catalog, DataFile, DatasetInfo
from samplehub.catalog import schema as catalog_schema
from samplehub.config import ExecutorConfig
from samplehub.errors import InvalidSampleError, SampleHubError
from samplehub.executors import map_batch, parallelism
from samplehub.hilbert import hilbert_key
from samplehub.object_storage import storage_failures
from samplehub.progress import progress_bar
from samplehub.records import FileEntry, Quarantined, SampleRecord, content_hash
from samplehub.sources import Source
from samplehub.store import DatasetStore, SampleStore

log = logging.getLogger(__name__)

AGAIN = ("the batches committed before it are kept: ingest {dataset!r} again once the "
         "storage answers (`samplehub fsck` lists what is left to reclaim)")


@dataclass
class IngestReport:
    """What one ingest run did."""

    dataset: str
    found: int = 0
    added: int = 0
    skipped: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    empty_label_folders: list[str] = field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0
    total: int = 0
    labels: int = 0
    hashed: int = 0
    """Rows catalogued before content hashes existed whose hash this run filled in."""
    reclaimed: int = 0
    """Store rows an interrupted run wrote past its last commit, dropped before appending."""

    @property
    def samples_per_s(self) -> float:
        """Samples read per second over the whole run."""
        return (self.added + len(self.quarantined)) / self.seconds if self.seconds else 0.0


def read_entry(source: Source, entry: FileEntry) -> SampleRecord | Quarantined:
    """Read one entry and hash its decoded pixels (:func:`~samplehub.records.content_hash`).

    This is the function the executor maps, so the hash is computed where the pixels were
    decoded (a thread here, a Spark executor at scale). A bad sample becomes a
    :class:`Quarantined` with the reason.
    """
    try:
        record = source.read(entry)
    except SampleHubError as exc:
        return Quarantined(entry, str(exc), type(exc).__name__)
    except (OSError, ValueError) as exc:
        return Quarantined(entry, f"{entry.uri}: {exc}", type(exc).__name__)
    record.content_hash = content_hash(record.image)
    return record


def write_parts(
    task: IngestTask, placed: Sequence[tuple[FileEntry, int]], executor: ExecutorConfig
) -> list[PartResult]:
    """Run :func:`write_part` over ``placed`` entries: in-process, or one Spark task a part.

    Spark gets about two parts per core, each at most ``executor.batch_size`` entries
    rounded up to whole shards, so the cluster's cores stay busy and no task holds a whole
    dataset. Parts are cut where a row is a multiple of the part size, itself a multiple
    of the store's :meth:`~samplehub.store.DatasetStore.shard_alignment`: each shard of
    the run's rows is written by one task (a shard is one object, rewritten whole), the
    first one too when the run starts inside it.

    Args:
        task: the run's shared settings.
        placed: entries with consecutive rows.
        executor: the run's executor.
    """
    if executor.kind != "spark":
        return [write_part(task, placed, executor)]
    align = task.store.dataset(task.source.spec.name).shard_alignment()
    size = part_size(len(placed), parallelism(executor), executor.batch_size, align)
    parts = aligned_parts(placed, size)
    one_thread = ExecutorConfig(kind="threads", workers=1)
    return map_batch(partial(write_part, task, executor=one_thread), parts, executor)


def part_size(n: int, cores: int, batch_size: int, align: int) -> int:
    """Rows per Spark part of a run of ``n`` rows on ``cores`` cores.

    About two parts per core, at most ``batch_size`` rows, rounded up to a multiple of
    ``align`` (whole shards).
    """
    size = max(1, min(batch_size, -(-n // (2 * cores))))
    return -(-size // align) * align


def aligned_parts(
    placed: Sequence[tuple[FileEntry, int]], size: int
) -> list[list[tuple[FileEntry, int]]]:
    """``placed`` (consecutive rows) cut before each row that is a multiple of ``size``."""
    parts: list[list[tuple[FileEntry, int]]] = []
    for entry, row in placed:
        if not parts or row % size == 0:
            parts.append([])
        parts[-1].append((entry, row))
    return parts


def read_entries(
    source: Source, entries: Sequence[FileEntry], executor: ExecutorConfig
) -> tuple[list[SampleRecord], list[Quarantined]]:
    """Read a batch on the configured executor (threads: decoders release the GIL)."""
    results = map_batch(partial(read_entry, source), entries, executor)
    good = [r for r in results if isinstance(r, SampleRecord)]
    bad = [r for r in results if isinstance(r, Quarantined)]
    return good, bad


def records_to_table(
    records: Sequence[SampleRecord], locations: Sequence[tuple[str, int]]
) -> pa.Table:
    """Catalog rows (``samples`` schema) for stored records."""
    now = datetime.now(UTC)
    bboxes = [r.geo.bbox for r in records]
    centres = np.array(
        [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) if b else (np.nan, np.nan) for b in bboxes]
    ).reshape(-1, 2)
    georeferenced = ~np.isnan(centres[:, 0])
    keys = np.zeros(len(records), dtype=np.int64)
    if georeferenced.any():
        keys[georeferenced] = hilbert_key(centres[georeferenced, 0], centres[georeferenced, 1])
    rows = []
    for i, (record, (key, index)) in enumerate(zip(records, locations, strict=True)):
        _, h, w = record.shape
        bbox = record.geo.bbox
        rows.append(
            {
                "sample_id": record.entry.sample_id,
                "dataset": record.entry.dataset,
                "relpath": record.entry.relpath,
                "uri": record.entry.uri,
                "labels": list(record.entry.labels),
                "label_path": list(record.entry.label_path),
                "unified_labels": [],
                "split": record.entry.split,
                "width": w,
                "height": h,
                "bands": list(record.band_names),
                "dtype": record.image.dtype.name,
                "sensor": record.sensor,
                "gsd": record.geo.gsd,
                "crs": record.geo.crs,
                "georeferenced": bool(georeferenced[i]),
                "minx": bbox[0] if bbox else None,
                "miny": bbox[1] if bbox else None,
                "maxx": bbox[2] if bbox else None,
                "maxy": bbox[3] if bbox else None,
                "footprint": record.geo.footprint_wkb,
                "hilbert": int(keys[i]) if georeferenced[i] else None,
                "time": record.geo.time,
                "checksum": record.checksum,
                "content_hash": record.content_hash or content_hash(record.image),
                "zarr_array": key,
                "zarr_index": index,
                "ingested_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=catalog_schema.SAMPLES)


def quarantine_table(items: Iterable[Quarantined]) -> pa.Table:
    """Rows of the ``quarantine`` table."""
    now = datetime.now(UTC)
    return pa.Table.from_pylist(
        [
            {
                "dataset": q.entry.dataset,
                "relpath": q.entry.relpath,
                "uri": q.entry.uri,
                "error_type": q.error_type,
                "reason": q.reason,
                "at": now,
            }
            for q in items
        ],
        schema=catalog_schema.QUARANTINE,
    )


@dataclass(frozen=True)
class IngestTask:
    """What every writer of one ingest run shares; pickled to Spark executors as it is.

    Args:
        source: the dataset's source (its spec and filesystem handle).
        catalog: where part files of catalog rows are written.
        store: where pixels are written.
        capacity: the rows every store array of this run is sized to
            (:meth:`~samplehub.store.DatasetStore.write_rows`).
    """

    source: Source
    catalog: Catalog
    store: SampleStore
    capacity: int


@dataclass
class PartResult:
    """What one writer sends back: no pixels, only where its outputs are."""

    file: DataFile | None
    """Its uncommitted part file of catalog rows (``None`` when nothing decoded)."""
    quarantined: list[Quarantined]
    rows: dict[str, int]
    """``{array key: highest row written + 1}``."""
    added: int = 0
    bytes_written: int = 0


DECODE_CHUNK = 256
"""Samples one writer holds decoded at a time, whatever the size of its part."""


def write_part(
    task: IngestTask, part: Sequence[tuple[FileEntry, int]], executor: ExecutorConfig
) -> PartResult:
    """Decode one part's entries, write their pixels at their rows and their rows' file.

    This is what an executor runs (a Spark task, or the driver's thread pool in-process):
    pixels go to the store and catalog rows to one Parquet part file, both on the
    configured storage; only the small :class:`PartResult` goes back to the driver.

    Args:
        task: the run's shared settings.
        part: entries with the store row each was given.
        executor: decodes each chunk of the part (a thread pool in-process, one thread in
            a Spark task, whose parallelism is the cluster's cores).
    """
    dataset = task.source.spec.name
    target = task.store.dataset(dataset)
    result = PartResult(file=None, quarantined=[], rows={})
    tables = []
    for start in range(0, len(part), DECODE_CHUNK):
        chunk = part[start : start + DECODE_CHUNK]
        row_of = {entry.sample_id: row for entry, row in chunk}
        records, bad = read_entries(task.source, [entry for entry, _ in chunk], executor)
        result.quarantined.extend(bad)
        if not records:
            continue
        locations = target.write_rows(
            records, [row_of[r.entry.sample_id] for r in records], task.capacity)
        for key, row in locations:
            result.rows[key] = max(result.rows.get(key, 0), row + 1)
        tables.append(records_to_table(records, locations))
        result.added += len(records)
        result.bytes_written += sum(r.image.nbytes for r in records)
    if tables:
        result.file = task.catalog.write_file("samples", dataset, pa.concat_tables(tables))
    return result


def ingest_dataset(
    source: Source,
    catalog: Catalog,
    store: SampleStore,
    *,
    executor: ExecutorConfig | None = None,
    progress: bool = False,
) -> IngestReport:
    """Ingest every sample of ``source`` that the catalog does not hold yet.

    Each new sample's store row is fixed before decoding (the store's rows plus its place
    among the run's new files), so writers write in place and every executor lays the
    store out alike. With threads, each batch is one atomic Delta commit after its pixels
    are in Zarr, so an interrupted run keeps every batch it committed. On Spark the
    executors write pixels and Parquet part files of catalog rows themselves
    (:func:`write_part`) and the driver, which never holds pixels, commits every part in
    one transaction: a killed run commits nothing. Either way a re-run adds only what is
    missing (zero rows when nothing changed), and pixels a killed run wrote past its last
    commit are dropped first (:func:`reclaim_uncommitted`), so they neither stay as
    orphans nor shift rows. The caller holds the dataset's writer lock
    (``Repository.ingest`` does). The dataset's quarantine partition is replaced by this
    run's failures, so a file fixed since the last run leaves quarantine when it is
    ingested.
    """
    started = time.perf_counter()
    executor = executor or ExecutorConfig()
    dataset = source.spec.name
    report = IngestReport(dataset=dataset)
    tree = source.label_tree()
    known = set(catalog.sample_ids(dataset).tolist())
    target = store.dataset(dataset)
    report.reclaimed = reclaim_uncommitted(catalog, target, dataset)
    row = target.rows()

    def new_entries(batch: Sequence[FileEntry]) -> list[FileEntry]:
        report.found += len(batch)
        new = [e for e in batch if e.sample_id not in known]
        report.skipped += len(batch) - len(new)
        return new

    with progress_bar(desc=f"ingest {dataset}", unit="sample", enabled=progress) as bar:
        if executor.kind == "spark":
            entries = [e for batch in source.discover(executor.batch_size)
                       for e in new_entries(batch)]
            waves: Iterable[list[FileEntry]] = [entries] if entries else []
        else:
            waves = (new for batch in source.discover(executor.batch_size)
                     if (new := new_entries(batch)))
        for wave in waves:
            placed = list(zip(wave, range(row, row + len(wave)), strict=True))
            task = IngestTask(source, catalog, store, capacity=row + len(wave))
            with storage_failures(f"{store.uri(dataset)} and {catalog.uri('samples')}",
                                  AGAIN.format(dataset=dataset)):
                results = write_parts(task, placed, executor)
                catalog.commit_files("samples", [r.file for r in results if r.file])
                written: dict[str, int] = {}
                for result in results:
                    for key, rows in result.rows.items():
                        written[key] = max(written.get(key, 0), rows)
                for key, rows in written.items():
                    target.truncate(key, rows)  # the run sized them past their last row
            for result in results:
                report.quarantined.extend(result.quarantined)
                report.added += result.added
                report.bytes_written += result.bytes_written
            row += len(wave)
            bar.update(len(wave))
    for q in report.quarantined:
        log.warning("quarantined %s: %s", q.entry.relpath, q.reason)
    report.hashed = fill_content_hashes(catalog, store, dataset, executor.batch_size)
    if report.added and catalog.read("samples", dataset, columns=["georeferenced"],
                                     filter_expression=pc.field("georeferenced")).num_rows:
        catalog.cluster_by_hilbert(dataset)  # so bbox reads skip the files out of reach
    catalog.replace_partition("quarantine", dataset, quarantine_table(report.quarantined))
    report.empty_label_folders = empty_folders(source)
    report.total = len(known) + report.added
    report.labels = len(tree.leaves)
    for labels in catalog.read("samples", dataset, columns=["labels"]).column("labels").to_pylist():
        tree.count(labels)
    previous = registry_version(catalog, dataset)
    catalog.register_dataset(
        DatasetInfo(
            dataset=dataset,
            source_uri=source.spec.uri,
            kind=source.kind,
            platform=source.spec.platform,
            licence=source.spec.licence,
            citation=source.spec.citation,
            label_tree=tree.to_json(),
            n_found=report.found,
            n_samples=report.total,
            n_labels=report.labels,
            n_quarantined=len(report.quarantined),
            version=previous + (1 if report.added else 0),
        )
    )
    report.seconds = time.perf_counter() - started
    if report.quarantined and report.total == 0:
        # Recorded above (quarantine table and registry), so nothing is lost; but a
        # dataset none of whose files decode is a failed ingest, not an empty success.
        first = report.quarantined[0]
        raise InvalidSampleError(
            f"dataset {dataset!r}: none of the {report.found} files under {source.spec.uri} "
            f"could be read (first: {first.entry.relpath}: {first.reason}); see "
            f"`samplehub quarantine {dataset}` and fix or remove the files"
        )
    return report


def committed_rows(catalog: Catalog, dataset: str) -> dict[str, int]:
    """``{store array key: rows the catalog references}`` (highest row index + 1)."""
    rows = catalog.read("samples", dataset, columns=["zarr_array", "zarr_index"])
    highest = rows.group_by("zarr_array").aggregate([("zarr_index", "max")])
    return {key: int(index) + 1 for key, index in zip(
        highest.column("zarr_array").to_pylist(),
        highest.column("zarr_index_max").to_pylist(), strict=True)}


def uncommitted_rows(committed: Mapping[str, int], stored: Mapping[str, int]) -> dict[str, int]:
    """``{array key: stored rows past the committed ones}`` for arrays that have any.

    Args:
        committed: :func:`committed_rows` of the dataset.
        stored: ``DatasetStore.row_counts()`` of its store.
    """
    return {key: rows - committed.get(key, 0) for key, rows in stored.items()
            if rows > committed.get(key, 0)}


def reclaim_uncommitted(catalog: Catalog, target: DatasetStore, dataset: str) -> int:
    """Truncate each of the dataset's arrays to the rows its catalog rows reference.

    Rows past them were written by a run that died before its catalog commit; no catalog
    row points at them, and appending after them would leave them stored forever. The
    Parquet part files of catalog rows such a run's executors wrote
    (:func:`write_part`) are deleted too.

    Returns:
        The number of rows dropped.
    """
    committed = committed_rows(catalog, dataset)
    dropped = 0
    for key, extra in uncommitted_rows(committed, target.row_counts()).items():
        dropped += target.truncate(key, committed.get(key, 0))
        log.info("%s: dropped %d store rows of %s past the last commit", dataset, extra, key)
    catalog.drop_uncommitted_files("samples", dataset)
    return dropped


def fill_content_hashes(
    catalog: Catalog, store: SampleStore, dataset: str, batch_size: int = 2048
) -> int:
    """Hash the stored pixels of ``dataset``'s rows that have no ``content_hash``.

    Rows catalogued before the column existed hold null there. The Zarr store keeps the
    decoded pixels at native dtype and shape, so hashing them gives the hash ingest
    computes at decode time, without reading the source again. The partition is rewritten
    in one atomic commit; when every row has its hash nothing is written, so a re-ingest
    of an unchanged dataset stays a no-op.

    Returns:
        The number of rows whose hash was filled in.
    """
    hashes = catalog.read("samples", dataset, columns=["content_hash"]).column("content_hash")
    if hashes.null_count == 0:
        return 0
    rows = catalog.read("samples", dataset)
    filled = rows.column("content_hash").to_pylist()
    missing = [i for i, h in enumerate(filled) if h is None]
    keys = rows.column("zarr_array").to_pylist()
    index = rows.column("zarr_index").to_numpy()
    target = store.dataset(dataset)
    by_array: dict[str, list[int]] = {}
    for i in missing:
        by_array.setdefault(keys[i], []).append(i)
    for key, members in by_array.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            for i, image in zip(chunk, target.images(key, index[chunk]), strict=True):
                filled[i] = content_hash(image)
    column = rows.schema.get_field_index("content_hash")
    rows = rows.set_column(column, "content_hash", pa.array(filled, pa.string()))
    catalog.replace_partition("samples", dataset, rows)
    log.info("%s: filled in the content hash of %d catalogued samples", dataset, len(missing))
    return len(missing)


def registry_version(catalog: Catalog, dataset: str) -> int:
    """The dataset's current registry version (0 before its first ingest)."""
    rows = catalog.read("datasets", dataset, columns=["version"]).column("version").to_pylist()
    return int(rows[0]) if rows else 0


def empty_folders(source: Source) -> list[str]:
    """Empty label folders, for sources that have them."""
    finder = getattr(source, "empty_label_folders", None)
    return list(finder()) if finder else []
