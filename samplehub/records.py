"""The records that flow through ingestion.

A :class:`FileEntry` is what discovery finds (cheap: names and labels, no pixels);
a :class:`SampleRecord` is what reading an entry yields (pixels plus metadata).
Both are plain, picklable values so discovery and reading can run as pure
functions over batches, in threads or on Spark executors (:mod:`samplehub.executors`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


def sample_id_for(dataset: str, relpath: str) -> int:
    """Stable 63-bit sample id from (dataset, relative path).

    The top bit is cleared so the id is a non-negative int64, which FAISS and Delta
    both store without sign tricks. The same file re-ingested gets the same id.
    """
    digest = hashlib.blake2b(f"{dataset}\x00{relpath}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def content_hash(image: np.ndarray) -> str:
    """Hash of decoded pixels: BLAKE2b-128 (hex) of dtype, shape and array bytes.

    Unlike the file ``checksum``, it ignores the encoding: the same pixels saved as JPEG
    in one dataset and re-encoded losslessly (PNG, TIFF) in another hash alike, so the
    catalog can tell that two datasets ship one image (DESIGN section 5). Bytes are read
    little-endian and C-ordered, so the hash does not depend on the decoder's layout.
    """
    pixels = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<"))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{pixels.dtype.str}|{'x'.join(map(str, pixels.shape))}|".encode())
    digest.update(pixels.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One sample found by discovery.

    Attributes:
        dataset: dataset name (the Dagster partition key).
        relpath: path relative to the dataset root, POSIX separators; identifies the sample.
        uri: where to read it (local path or ``s3://bucket/key``); for multi-file samples the
            folder that holds the files.
        labels: the sample's original labels (one for folder-per-class, several for manifests).
        label_path: the folder hierarchy above the sample, root first (``("water", "river")``).
        files: for multi-file samples (one GeoTIFF per band), the member files' URIs.
        split: the split the source assigns (``train``/``test``), None when it assigns none.
    """

    dataset: str
    relpath: str
    uri: str
    labels: tuple[str, ...] = ()
    label_path: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    split: str | None = None

    @property
    def sample_id(self) -> int:
        """The stable id of this sample (see :func:`sample_id_for`)."""
        return sample_id_for(self.dataset, self.relpath)


@dataclass
class GeoInfo:
    """Where and when a sample was taken.

    Attributes:
        bbox: (min lon, min lat, max lon, max lat) in EPSG:4326.
        footprint_wkb: footprint polygon in EPSG:4326 as WKB.
        crs: the source CRS as an authority string or WKT.
        gsd: ground sample distance in metres.
        time: acquisition time (UTC), if known.
    """

    bbox: tuple[float, float, float, float] | None = None
    footprint_wkb: bytes | None = None
    crs: str | None = None
    gsd: float | None = None
    time: datetime | None = None


@dataclass
class SampleRecord:
    """A read sample: pixels ``image`` of shape (C, H, W) at native dtype, and metadata.

    ``checksum`` hashes the file bytes as read; ``content_hash`` the decoded pixels
    (:func:`content_hash`), set by :func:`samplehub.ingest.read_entry` on the executor
    that decoded them.
    """

    entry: FileEntry
    image: np.ndarray
    band_names: tuple[str, ...]
    sensor: str | None = None
    geo: GeoInfo = field(default_factory=GeoInfo)
    checksum: str = ""
    content_hash: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the image."""
        c, h, w = self.image.shape
        return int(c), int(h), int(w)


@dataclass(frozen=True)
class Quarantined:
    """A sample that could not be read, with the reason (an error message naming the file)."""

    entry: FileEntry
    reason: str
    error_type: str
