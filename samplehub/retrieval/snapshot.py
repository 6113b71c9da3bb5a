"""The samples table's query columns held in memory, with label lookups.

Step 1 of the query (main paper, section 3.4) filters every catalogued sample; reading a
million-row Delta table per query would dominate its latency, so the query keeps the
columns it filters and returns in numpy / Arrow form, plus an inverted index from
(dataset, original label) and from unified label to rows. A :class:`SampleSnapshot` is
immutable once built and shared by concurrent subqueries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samplehub.index.spatial import HilbertIndex

COLUMNS = (
    "sample_id", "dataset", "relpath", "labels", "unified_labels", "sensor", "time",
    "minx", "miny", "maxx", "maxy", "hilbert", "footprint", "georeferenced", "content_hash",
)  # fmt: skip
GEO_COLUMNS = ("minx", "miny", "maxx", "maxy", "hilbert", "footprint")


@dataclass(frozen=True)
class SampleSnapshot:
    """Query columns of the samples table, one entry per row.

    Attributes:
        sample_id: (n,) int64.
        dataset: (n,) int32 codes into ``datasets``.
        datasets: dataset names.
        sensor: (n,) int32 codes into ``sensors``; -1 where unknown.
        sensors: sensor names.
        relpath: (n,) object array of relative paths.
        labels: the original labels, a list array of length n.
        time: (n,) ``datetime64[us]`` acquisition times (UTC), NaT where unknown.
        geo: georeferenced rows only: ``row`` plus the bbox, ``hilbert`` and ``footprint``
            columns that :mod:`samplehub.index.spatial` filters.
        spatial: ``geo`` sorted by Hilbert key, built once for every bbox query.
        label_rows: (dataset, original label) -> sorted rows carrying it.
        unified_rows: unified label id -> sorted rows whose ``unified_labels`` hold it.
        image: (n,) int64 image id: rows with one ``content_hash`` (copies of one image,
            DESIGN section 5) share it; a row without a hash is an image of its own.
        copies: image id -> its sorted rows, for images catalogued more than once.
    """

    sample_id: np.ndarray
    dataset: np.ndarray
    datasets: tuple[str, ...]
    sensor: np.ndarray
    sensors: tuple[str, ...]
    relpath: np.ndarray
    labels: pa.ListArray
    time: np.ndarray
    geo: pa.Table
    spatial: HilbertIndex
    label_rows: dict[tuple[str, str], np.ndarray]
    unified_rows: dict[str, np.ndarray]
    image: np.ndarray
    copies: dict[int, np.ndarray]

    def __len__(self) -> int:
        """Number of samples (catalog rows) in the snapshot."""
        return len(self.sample_id)

    @classmethod
    def from_table(cls, table: pa.Table) -> SampleSnapshot:
        """Build from the samples table (at least the :data:`COLUMNS`).

        Args:
            table: rows of the ``samples`` Delta table; without a ``content_hash`` column
                every row is an image of its own.
        """
        if "content_hash" not in table.column_names:
            table = table.append_column("content_hash", pa.nulls(table.num_rows, pa.string()))
        table = table.select(list(COLUMNS)).combine_chunks()
        dataset, datasets = _codes(table.column("dataset"))
        sensor, sensors = _codes(table.column("sensor"))
        rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
        geo = table.select(list(GEO_COLUMNS)).append_column("row", rows)
        geo = geo.filter(pc.fill_null(table.column("georeferenced"), False))
        labels = _list_array(table.column("labels"))
        image, copies = _images(table.column("content_hash"))
        return cls(
            sample_id=table.column("sample_id").to_numpy(),
            dataset=dataset,
            datasets=datasets,
            sensor=sensor,
            sensors=sensors,
            relpath=table.column("relpath").to_numpy(zero_copy_only=False),
            labels=labels,
            time=_times(table.column("time")),
            geo=geo,
            spatial=HilbertIndex.of(geo),
            label_rows=_inverted(labels, dataset, datasets),
            unified_rows={
                label: rows
                for (_, label), rows in _inverted(
                    _list_array(table.column("unified_labels")),
                    np.zeros(table.num_rows, np.int32),
                    ("",),
                ).items()
            },
            image=image,
            copies=copies,
        )

    def labels_of(self, rows: np.ndarray) -> list[list[str]]:
        """Original labels of ``rows``."""
        return self.labels.take(pa.array(rows, pa.int64())).to_pylist()  # type: ignore[no-any-return]

    def copies_of(self, row: int) -> np.ndarray:
        """Every row holding the image of ``row`` (``row`` itself included), sorted."""
        rows = self.copies.get(int(self.image[row]))
        return np.array([row], np.int64) if rows is None else rows

    @cached_property
    def later_copies(self) -> np.ndarray:
        """Every row but the first of each image catalogued more than once, sorted.

        A search that leaves them out has one row per image, so its k results are k
        different images (DESIGN section 5).
        """
        if not self.copies:
            return np.zeros(0, np.int64)
        return np.sort(np.concatenate([rows[1:] for rows in self.copies.values()]))

    def with_copies(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` plus every other copy of their images, sorted and unique."""
        if not self.copies or not len(rows):
            return rows
        extra = [self.copies[i] for i in np.unique(self.image[rows]).tolist() if i in self.copies]
        return np.unique(np.concatenate([rows, *extra])) if extra else rows

    def first_copies(self, rows: np.ndarray, seen: set[int]) -> np.ndarray:
        """``rows`` without those whose image an earlier row, or ``seen``, stands for.

        Order is kept; the images of the rows kept are added to ``seen``. A query reports
        an image once however many datasets hold it.
        """
        if not self.copies or not len(rows):
            return rows
        keep = np.ones(len(rows), dtype=bool)
        for i, image in enumerate(self.image[rows].tolist()):
            if image in self.copies:
                keep[i] = image not in seen
                seen.add(image)
        return rows[keep] if not keep.all() else rows


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Dictionary codes (int32, -1 for null) and the dictionary of a string column."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, tuple(encoded.dictionary.to_pylist())


def _images(hashes: pa.ChunkedArray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Image id of each row (shared by rows with one content hash) and the copies map."""
    encoded = pc.dictionary_encode(hashes).combine_chunks()
    n, known = len(encoded), len(encoded.dictionary)
    image = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    unhashed = image < 0
    image[unhashed] = known + np.flatnonzero(unhashed)  # an image of its own
    if n == 0 or known == n - int(unhashed.sum()):
        return image, {}
    counts = np.bincount(image[~unhashed], minlength=known)
    rows = np.flatnonzero(~unhashed & (counts[np.minimum(image, known - 1)] > 1))
    if not len(rows):
        return image, {}
    order = np.argsort(image[rows], kind="stable")
    rows = rows[order]
    starts = np.flatnonzero(np.r_[True, image[rows][1:] != image[rows][:-1]])
    return image, {
        int(image[group[0]]): group for group in np.split(rows, starts[1:])
    }


def _list_array(column: pa.ChunkedArray) -> pa.ListArray:
    """A list column as one ListArray, nulls as empty lists."""
    array = column.combine_chunks()
    return pc.fill_null(array, pa.scalar([], array.type))  # type: ignore[no-any-return]


def _times(column: pa.ChunkedArray) -> np.ndarray:
    """A UTC timestamp column as naive ``datetime64[us]`` (NaT for null)."""
    naive = pc.cast(column, pa.timestamp("us"))
    return np.asarray(naive.to_numpy(zero_copy_only=False), dtype="datetime64[us]")


def _inverted(
    labels: pa.ListArray, dataset: np.ndarray, datasets: tuple[str, ...]
) -> dict[tuple[str, str], np.ndarray]:
    """(dataset, label) -> sorted unique rows carrying that label."""
    parents = pc.list_parent_indices(labels).to_numpy()
    if len(parents) == 0:
        return {}
    values = pc.dictionary_encode(pc.list_flatten(labels))
    names = values.dictionary.to_pylist()
    key = dataset[parents].astype(np.int64) * len(names) + values.indices.to_numpy()
    order = np.lexsort((parents, key))
    key, parents = key[order], parents[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    groups = np.split(parents, starts[1:])
    return {
        (datasets[k // len(names)], names[k % len(names)]): np.unique(g)
        for k, g in zip(key[starts].tolist(), groups, strict=True)
    }
