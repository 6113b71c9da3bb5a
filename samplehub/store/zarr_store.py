"""Zarr v3 image store: native dtype and bands, sharded, thumbnails where they are smaller.

A dataset's samples need not share a shape (UC Merced has a few smaller images; a
BigEarthNet root mixes 12-band S2 and 2-band S1 patches). Rather than pad, samples are
grouped by shape: ``images/<dtype>_<C>x<H>x<W>`` holds (N, C, H, W) and
``thumbs/<same key>`` holds (N, 3, t, t) uint8 at the same row index. The catalog row
records the array key and the row index.

Layout: each sample is one chunk, and the chunks of :data:`SHARD_SAMPLES` consecutive rows
(fewer for large samples, :func:`shard_rows`) are stored together as one shard, Zarr v3's
sharding codec: one object (a file, an S3 object) holding the compressed chunks and an
index of where each lies. A thousand samples are one or two objects rather than two
thousand (an image and a thumbnail each), and reading one sample is two ranged reads
(the shard's index, then its chunk), its chunk encoded as :func:`chunk_codecs` says.
Arrays written before sharding (one object per sample) keep their layout and are read,
appended to and truncated alike.

Thumbnails are stored only where they are smaller than the image: an array of uint8
images of three bands no larger than t x t (EuroSAT's 64 px chips) has no ``thumbs/``,
and :meth:`DatasetStore.thumb` makes a sample's thumbnail from its image (and its
catalogued bands) exactly as :func:`thumbnail` made it at ingest.

Each new sample of an ingest run has a row fixed before anything is decoded: the
dataset's stored rows plus its place among the run's new files
(:meth:`DatasetStore.write_rows`). So writers (threads here, Spark executors at scale)
write their samples in place, in any order and without talking to each other, and every
executor lays the store out as the in-process run does. A row whose file failed to
decode, or whose image has another shape, is a hole: no chunk is written for it. Writing
into a shard rewrites the whole object, so two writers must never share one: the rows
each writer gets form one range whose ends are multiples of
:meth:`DatasetStore.shard_alignment`, except where the run's rows begin and end
(``samplehub.ingest.write_parts`` cuts Spark parts so). A run that starts inside a shard
holding committed rows rewrites that shard from its first part only; the committed
samples keep their bytes and their place in it (a shard lays chunks out in row order and
a run writes only rows after them), so a reader racing the rewrite reads the same bytes
from either version.

Pixels are written before the catalog commit, so no catalog row ever points at missing
pixels. If a run dies in between, the rows past the last committed one are unreferenced;
the next ingest of the dataset truncates each array back to its committed rows
(:meth:`DatasetStore.truncate`, which deletes them, inside a shard too) before writing,
and ``samplehub fsck`` reports them meanwhile.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import zarr
from PIL import Image
from zarr.codecs import TransposeCodec, ZstdCodec
from zarr.errors import ContainsArrayError, NodeTypeValidationError

from samplehub.bands import rgb_composite
from samplehub.errors import SampleNotFoundError
from samplehub.records import SampleRecord
from samplehub.store.codecs import WebpLossless

SHARD_SAMPLES = 1024
"""Rows per shard of a new array of small samples, a power of two: EuroSAT's 27,000 are
27 objects (``bench/store_layout.py``). Every new array's shard length divides it."""

WEBP_MAX_SIDE = 16383
"""WebP's largest picture side."""

SHARD_BYTES = 64 * 2**20
"""Most decoded bytes in one shard: larger samples get fewer rows per shard, so a writer
rewriting a shard holds a bounded amount (UC Merced's 256 px chips: 256 rows)."""


def chunk_codecs(dtype: np.dtype[Any], shape: tuple[int, ...]) -> dict[str, Any]:
    """``create_array`` filters, serializer and compressors of a new array's chunks.

    A chunk (1, C, H, W) of a (C, H, W) sample is laid out pixel by pixel, (1, H, W, C).
    8-bit RGB(A) samples are then lossless WebP
    (:class:`~samplehub.store.codecs.WebpLossless`), the codec ``bench/store_layout.py``'s
    rule picks from its table: on EuroSAT it stores 1.41x the source JPEG's bytes where
    zstd stores 2.3x, and reads a sample faster than the store before shards; on UC
    Merced's 256 px images 2.4x where zstd stores 4.6x, reading as fast as the store
    before shards and about 0.5 ms slower than zstd would. Other samples (more bands,
    16-bit, sides past WebP's 16,383 px) are zstd at level 9; the table holds RGB samples
    only, where zstd 9 was the general-purpose codec of fewest bytes that read and wrote no
    slower than the store before shards.
    """
    c, h, w = shape
    pixel_by_pixel = TransposeCodec(order=(0, 2, 3, 1))
    if np.dtype(dtype) == np.uint8 and c in (3, 4) and max(h, w) <= WEBP_MAX_SIDE:
        return {"filters": [pixel_by_pixel], "serializer": WebpLossless(), "compressors": None}
    return {"filters": [pixel_by_pixel], "compressors": [ZstdCodec(level=9)]}


def array_key(image: np.ndarray) -> str:
    """``<dtype>_<C>x<H>x<W>`` of a (C, H, W) image."""
    c, h, w = image.shape
    return f"{image.dtype.name}_{c}x{h}x{w}"


def shard_rows(sample_bytes: int) -> int:
    """Rows per shard for samples of ``sample_bytes`` decoded bytes each.

    :data:`SHARD_SAMPLES` halved until the shard holds at most :data:`SHARD_BYTES` (at
    least one row), so it always divides :data:`SHARD_SAMPLES`.
    """
    rows = SHARD_SAMPLES
    while rows > 1 and rows * sample_bytes > SHARD_BYTES:
        rows //= 2
    return rows


def fit_thumbnail(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 (3, size, size) of a uint8 (3, H, W) picture, resized bilinearly if needed."""
    if rgb.shape[1:] == (size, size):
        return rgb
    picture = Image.fromarray(rgb.transpose(1, 2, 0)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(picture).transpose(2, 0, 1)


def thumbnail(record: SampleRecord, size: int) -> np.ndarray:
    """uint8 (3, size, size) RGB thumbnail of a record (band mapping picks RGB)."""
    return fit_thumbnail(rgb_composite(record.image, record.band_names, record.sensor), size)


def rows_per_object(array: zarr.Array) -> int:
    """Rows one stored object of ``array`` holds: its shard, or its chunk if unsharded."""
    return int((array.shards or array.chunks)[0])


class DatasetStore:
    """The Zarr group of one dataset.

    Args:
        uri: the dataset's group (``<root>/<dataset>.zarr``), holding ``images/`` and
            ``thumbs/``.
        thumb_size: side in pixels of the square thumbnails.
        storage_options: fsspec options for a remote ``uri``.
    """

    def __init__(self, uri: str, thumb_size: int,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        self.uri = uri
        self.thumb_size = thumb_size
        self.storage_options = dict(storage_options or {})

    @cached_property
    def group(self) -> zarr.Group:
        """The dataset's group, opened (created if absent) when first used.

        Reading a sample opens only its array (:meth:`_open`): an API request reads one
        sample, and opening the group first cost it a metadata read.
        """
        # Named, the format is not guessed by also reading Zarr v2's three metadata files.
        return zarr.open_group(self.uri, mode="a", zarr_format=3,
                               storage_options=self.storage_options or None)

    def _require(self, kind: str, key: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 rows: int, shard: int) -> zarr.Array:
        """The array ``<kind>/<key>``, created sharded with ``rows`` rows if absent.

        Writers of one run that create the same array at once all write the same metadata
        (same ``rows``, same shard), so whichever lands last changes nothing.
        """
        group = self.group.require_group(kind)
        if key not in group:
            with contextlib.suppress(ContainsArrayError):
                group.create_array(key, shape=(rows, *shape), chunks=(1, *shape),
                                   shards=(shard, *shape), dtype=dtype,
                                   **chunk_codecs(dtype, shape))
        return self._array(f"{kind}/{key}")

    def rows(self) -> int:
        """Where the next run's rows start: the longest image array's length."""
        return max(self.row_counts().values(), default=0)

    def row_counts(self) -> dict[str, int]:
        """``{array key: rows}`` of every image array of the dataset."""
        if "images" not in self.group:
            return {}
        images = self.group["images"]
        assert isinstance(images, zarr.Group)
        return {key: self._array(f"images/{key}").shape[0] for key in sorted(images.array_keys())}

    def shard_alignment(self) -> int:
        """Rows that writers' ranges start and end at multiples of, so none share a shard.

        :data:`SHARD_SAMPLES`, which every new array's shard length divides, or a multiple
        of it that the dataset's existing arrays' shard lengths divide too.
        """
        lengths = [rows_per_object(self._array(f"{kind}/{key}"))
                   for kind in ("images", "thumbs") if kind in self.group
                   for key in self._group(kind).array_keys()]
        return math.lcm(SHARD_SAMPLES, *lengths)

    def truncate(self, key: str, rows: int) -> int:
        """Drop the rows from ``rows`` on of one image array and its thumbnails.

        Returns:
            The number of rows dropped; their chunks are deleted.
        """
        dropped = 0
        for kind in ("images", "thumbs"):
            array = self._open(f"{kind}/{key}")
            if array is None or array.shape[0] <= rows:
                continue
            dropped = max(dropped, array.shape[0] - rows)
            # Resizing deletes only whole objects past the end; the rows past the cut in
            # the shard it falls in must be emptied, or an array grown again later would
            # read them back where its holes are.
            per_object = rows_per_object(array)
            end = min(array.shape[0], -(-rows // per_object) * per_object)
            if end > rows:
                array[rows:end] = array.fill_value
            array.resize((rows, *array.shape[1:]))
        return dropped

    def _group(self, path: str) -> zarr.Group:
        node = self.group[path]
        assert isinstance(node, zarr.Group)
        return node

    def _array(self, path: str) -> zarr.Array:
        node = self.group[path]
        if not isinstance(node, zarr.Array):
            raise SampleNotFoundError(
                f"{path} in {self.uri} is a group, not an image array; re-ingest the dataset"
            )
        return node

    def _open(self, path: str) -> zarr.Array | None:
        """The array at ``path`` opened on its own (one metadata read), None if absent."""
        try:
            return zarr.open_array(f"{self.uri}/{path}", mode="r+", zarr_format=3,
                                   storage_options=self.storage_options or None)
        except FileNotFoundError:
            return None
        except NodeTypeValidationError as exc:
            raise SampleNotFoundError(
                f"{path} in {self.uri} is a group, not an image array; re-ingest the dataset"
            ) from exc

    def thumbs_from_images(self, key: str) -> bool:
        """Whether ``key``'s images may serve as their own thumbnails.

        uint8 with three bands and no larger than the thumbnail: storing a thumbnail
        would take as many bytes as the image or more.
        """
        dtype, shape = key.rsplit("_", 1)
        c, h, w = (int(n) for n in shape.split("x"))
        return dtype == "uint8" and c == 3 and h <= self.thumb_size and w <= self.thumb_size

    def write_rows(
        self, records: Sequence[SampleRecord], rows: Sequence[int], capacity: int
    ) -> list[tuple[str, int]]:
        """Write records' images, and thumbnails where they are smaller, at given rows.

        Args:
            records: decoded samples.
            rows: each record's row, fixed by the caller before decoding; the rows of one
                shard are never split between writers (:meth:`shard_alignment`).
            capacity: rows every array of the run is sized to (past its highest row);
                writers of one run pass the same value, so growing an array is the same
                metadata from any of them, and a shorter array is never written back.

        Returns:
            (array key, row) per record.
        """
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, record in enumerate(records):
            by_key[array_key(record.image)].append(i)
        locations: list[tuple[str, int]] = [("", -1)] * len(records)
        t = self.thumb_size
        for key, members in by_key.items():
            sample = records[members[0]].image
            shard = shard_rows(sample.nbytes)
            images = self._require("images", key, sample.shape, sample.dtype, capacity, shard)
            self._write(images, [rows[i] for i in members],
                        np.stack([records[i].image for i in members]), capacity)
            if not self.thumbs_from_images(key):
                thumbs = self._require("thumbs", key, (3, t, t), np.dtype("uint8"),
                                       capacity, shard)
                self._write(thumbs, [rows[i] for i in members],
                            np.stack([thumbnail(records[i], t) for i in members]), capacity)
            for i in members:
                locations[i] = (key, int(rows[i]))
        return locations

    @staticmethod
    def _write(array: zarr.Array, rows: Sequence[int], values: np.ndarray,
               capacity: int) -> None:
        """Write ``values`` (n, ...) at ``rows``, each stored object written once.

        Rows are written as contiguous blocks: zarr-python 3.1 cannot write an
        integer-array selection into a sharded array
        (https://github.com/zarr-developers/zarr-python/issues/2834), and a block per run
        of rows would rewrite a shard once per gap. A gap inside one object (rows of other
        shapes, failed files) joins the block around it with what the array holds there.
        """
        if array.shape[0] < capacity:
            array.resize((capacity, *array.shape[1:]))
        at = np.asarray(rows)
        order = np.argsort(at, kind="stable")
        at, values = at[order], values[order]
        per_object = rows_per_object(array)
        split = (np.diff(at) != 1) & (at[1:] // per_object != at[:-1] // per_object)
        for block in np.split(np.arange(len(at)), np.flatnonzero(split) + 1):
            lo, hi = int(at[block[0]]), int(at[block[-1]]) + 1
            if hi - lo == len(block):
                array[lo:hi] = values[block]
            else:
                held = np.asarray(array[lo:hi])
                held[at[block] - lo] = values[block]
                array[lo:hi] = held

    def append(self, records: Sequence[SampleRecord]) -> list[tuple[str, int]]:
        """Write records at the rows after the store's last; returns (array key, row) each."""
        start = self.rows()
        return self.write_rows(records, range(start, start + len(records)),
                               start + len(records))

    def image(self, key: str, index: int) -> np.ndarray:
        """(C, H, W) image at native dtype."""
        path = f"images/{key}"
        return self._row(self._open(path), path, index)

    def thumb(self, key: str, index: int, band_names: Sequence[str],
              sensor: str | None = None) -> np.ndarray:
        """uint8 (3, t, t) thumbnail of ``images/<key>[index]``.

        The stored one where thumbnails are stored; else made from the image exactly as
        :func:`thumbnail` made it from the record at ingest.

        Args:
            key: the sample's array key (its catalog row's ``zarr_array``).
            index: its row (``zarr_index``).
            band_names: its bands (``bands``), which pick the composite's RGB.
            sensor: its sensor (``sensor``), which picks the band mapping.
        """
        if not self.thumbs_from_images(key):
            path = f"thumbs/{key}"
            thumbs = self._open(path)
            if thumbs is not None:  # else a run died before writing it, or t changed since
                return self._row(thumbs, path, index)
        picture = rgb_composite(self.image(key, index), band_names, sensor)
        return fit_thumbnail(picture, self.thumb_size)

    def images(self, key: str, rows: np.ndarray) -> np.ndarray:
        """(n, C, H, W) images of several rows of one array, in the order given.

        Each run of consecutive rows is one slice read. zarr-python 3.1 takes an
        integer-array selection inside a shard for a selection of single elements (the
        issue cited in :meth:`_write`): 256 random rows of (3, 256, 256) took 8 s read that
        way, 0.5 s as slices.
        """
        path = f"images/{key}"
        array = self._open(path)
        at = np.asarray(rows, dtype=np.int64)
        if array is None or ((at < 0) | (at >= array.shape[0])).any():
            raise SampleNotFoundError(
                f"rows {at.tolist()[:10]} not all in {path} of {self.uri}; re-ingest the dataset"
            )
        order = np.argsort(at, kind="stable")
        out = np.empty((len(at), *array.shape[1:]), dtype=array.dtype)
        for run in np.split(order, np.flatnonzero(np.diff(at[order]) != 1) + 1):
            if len(run):
                out[run] = array[int(at[run[0]]) : int(at[run[-1]]) + 1]
        return out

    def _row(self, array: zarr.Array | None, path: str, index: int) -> np.ndarray:
        if array is None or not 0 <= index < array.shape[0]:
            raise SampleNotFoundError(
                f"no row {index} in {path} of {self.uri}; re-ingest the dataset"
            )
        return np.asarray(array[index])


class SampleStore:
    """All datasets' Zarr stores under one root (``<home>/zarr/<dataset>.zarr``).

    Args:
        root: local path or fsspec URL (``s3://bucket/zarr``) holding ``<dataset>.zarr``.
        thumb_size: side in pixels of the thumbnails.
        storage_options: fsspec options for a remote root (endpoint, credentials).
    """

    def __init__(
        self,
        root: str,
        thumb_size: int = 64,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self.thumb_size = thumb_size
        self.storage_options = dict(storage_options or {})

    def uri(self, dataset: str) -> str:
        """Location of one dataset's store."""
        return f"{self.root}/{dataset}.zarr"

    def datasets(self) -> list[str]:
        """Names of the datasets that have a store under the root (catalogued or not)."""
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.root, **self.storage_options)
        if not fs.exists(root):
            return []
        names = (str(path).rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(root, detail=False))
        return sorted(name[: -len(".zarr")] for name in names if name.endswith(".zarr"))

    def dataset(self, dataset: str) -> DatasetStore:
        """One dataset's store; nothing is opened (or created) before it is used."""
        return DatasetStore(self.uri(dataset), self.thumb_size, self.storage_options)
