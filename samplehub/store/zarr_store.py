"""Zarr v3 image store: native dtype and bands, one chunk per sample, thumbnails beside.

A dataset's samples need not share a shape (UC Merced has a few smaller images; a
BigEarthNet root mixes 12-band S2 and 2-band S1 patches). Rather than pad, samples are
grouped by shape: ``images/<dtype>_<C>x<H>x<W>`` holds (N, C, H, W) and
``thumbs/<same key>`` holds (N, 3, t, t) uint8 at the same row index. The catalog row
records the array key and the row index.

Each new sample of an ingest run has a row fixed before anything is decoded: the
dataset's stored rows plus its place among the run's new files
(:meth:`DatasetStore.write_rows`). So writers (threads here, Spark executors at scale)
write their samples' chunks in place, in any order and without talking to each other, and
every executor lays the store out as the in-process run does. A row whose file failed to
decode, or whose image has another shape, is a hole: no chunk is written for it.

Pixels are written before the catalog commit, so no catalog row ever points at missing
pixels. If a run dies in between, the rows past the last committed one are unreferenced;
the next ingest of the dataset truncates each array back to its committed rows
(:meth:`DatasetStore.truncate`, which deletes the chunks beyond) before writing, and
``samplehub fsck`` reports them meanwhile.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr
from PIL import Image
from zarr.errors import ContainsArrayError

from samplehub.bands import rgb_composite
from samplehub.errors import SampleNotFoundError
from samplehub.records import SampleRecord


def array_key(image: np.ndarray) -> str:
    """``<dtype>_<C>x<H>x<W>`` of a (C, H, W) image."""
    c, h, w = image.shape
    return f"{image.dtype.name}_{c}x{h}x{w}"


def thumbnail(record: SampleRecord, size: int) -> np.ndarray:
    """uint8 (3, size, size) RGB thumbnail of a record (band mapping picks RGB)."""
    rgb = rgb_composite(record.image, record.band_names, record.sensor)
    if rgb.shape[1:] == (size, size):
        return rgb
    picture = Image.fromarray(rgb.transpose(1, 2, 0)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(picture).transpose(2, 0, 1)


class DatasetStore:
    """The Zarr group of one dataset.

    Args:
        group: the dataset's Zarr group, holding ``images/`` and ``thumbs/``.
        thumb_size: side in pixels of the square thumbnails written beside the images.
    """

    def __init__(self, group: zarr.Group, thumb_size: int) -> None:
        self.group = group
        self.thumb_size = thumb_size

    def _arrays(self, key: str, sample: np.ndarray, rows: int = 0
                ) -> tuple[zarr.Array, zarr.Array]:
        """The image and thumbnail arrays of ``key``, created with ``rows`` rows if absent.

        Writers of one run that create the same array at once all write the same metadata
        (same ``rows``), so whichever lands last changes nothing.
        """
        images = self.group.require_group("images")
        thumbs = self.group.require_group("thumbs")
        # Each array on its own: a run that died between creating the two left only the
        # first, and the next run must create the other rather than fail to open it.
        t = self.thumb_size
        for group, shape, dtype in ((images, sample.shape, sample.dtype),
                                    (thumbs, (3, t, t), np.dtype("uint8"))):
            if key not in group:
                with contextlib.suppress(ContainsArrayError):
                    group.create_array(key, shape=(rows, *shape), chunks=(1, *shape),
                                       dtype=dtype)
        return self._array(f"images/{key}"), self._array(f"thumbs/{key}")

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

    def truncate(self, key: str, rows: int) -> int:
        """Drop the rows from ``rows`` on of one image array and its thumbnails.

        Returns:
            The number of rows dropped; their chunks are deleted.
        """
        dropped = 0
        for kind in ("images", "thumbs"):
            path = f"{kind}/{key}"
            if path not in self.group:
                continue
            array = self._array(path)
            if array.shape[0] > rows:
                dropped = max(dropped, array.shape[0] - rows)
                array.resize((rows, *array.shape[1:]))
        return dropped

    def _array(self, path: str) -> zarr.Array:
        node = self.group[path]
        if not isinstance(node, zarr.Array):
            raise SampleNotFoundError(
                f"{path} in {self.group.store} is a group, not an image array; "
                "re-ingest the dataset"
            )
        return node

    def write_rows(
        self, records: Sequence[SampleRecord], rows: Sequence[int], capacity: int
    ) -> list[tuple[str, int]]:
        """Write records' images and thumbnails at their given rows.

        Args:
            records: decoded samples.
            rows: each record's row, fixed by the caller before decoding.
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
        for key, members in by_key.items():
            arrays = self._arrays(key, records[members[0]].image, capacity)
            for array in arrays:
                if array.shape[0] < capacity:
                    array.resize((capacity, *array.shape[1:]))
            images, thumbs = arrays
            at = np.asarray([rows[i] for i in members])
            images.set_orthogonal_selection((at,), np.stack([records[i].image for i in members]))
            thumbs.set_orthogonal_selection(
                (at,), np.stack([thumbnail(records[i], self.thumb_size) for i in members]))
            for i in members:
                locations[i] = (key, int(rows[i]))
        return locations

    def append(self, records: Sequence[SampleRecord]) -> list[tuple[str, int]]:
        """Write records at the rows after the store's last; returns (array key, row) each."""
        start = self.rows()
        return self.write_rows(records, range(start, start + len(records)),
                               start + len(records))

    def image(self, key: str, index: int) -> np.ndarray:
        """(C, H, W) image at native dtype."""
        return self._read("images", key, index)

    def thumb(self, key: str, index: int) -> np.ndarray:
        """uint8 (3, t, t) thumbnail."""
        return self._read("thumbs", key, index)

    def images(self, key: str, rows: np.ndarray) -> np.ndarray:
        """(n, C, H, W) images of several rows of one array (one read per chunk)."""
        array = self._array(f"images/{key}")
        return np.asarray(array.get_orthogonal_selection((np.asarray(rows),)))

    def _read(self, kind: str, key: str, index: int) -> np.ndarray:
        path = f"{kind}/{key}"
        array = self._array(path) if path in self.group else None
        if array is None or not 0 <= index < array.shape[0]:
            raise SampleNotFoundError(
                f"no {kind[:-1]} at {path}[{index}] in {self.group.store}; re-ingest the dataset"
            )
        return np.asarray(array[index])


class SampleStore:
    """All datasets' Zarr stores under one root (``<home>/zarr/<dataset>.zarr``).

    Args:
        root: local path or fsspec URL (``s3://bucket/zarr``) holding ``<dataset>.zarr``.
        thumb_size: side in pixels of the thumbnails written at ingest.
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
        """Open (creating if needed) one dataset's store."""
        group = zarr.open_group(
            self.uri(dataset), mode="a", storage_options=self.storage_options or None
        )
        return DatasetStore(group, self.thumb_size)
