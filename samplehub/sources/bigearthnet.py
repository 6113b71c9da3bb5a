"""BigEarthNet patches: one folder per patch, one single-band GeoTIFF per band, JSON metadata.

BigEarthNet (Sumbul et al., IGARSS 2019; BigEarthNet-MM, 2021) stores each 1.2 x 1.2 km
patch as a folder ``<patch>/`` holding ``<patch>_<BAND>.tif`` files and
``<patch>_labels_metadata.json`` (multi-label CORINE classes, the footprint's corners in the
patch's UTM projection, the acquisition date). Known band layouts:

- Sentinel-2 L2A: 12 uint16 bands, B02/B03/B04/B08 at 10 m (120 px), B05/B06/B07/B8A/B11/B12
  at 20 m (60 px), B01/B09 at 60 m (20 px). They are stacked on the 10 m grid (12, 120, 120)
  by nearest-neighbour upsampling: a 20 m pixel becomes 2 x 2 pixels, a 60 m pixel 6 x 6, so
  the native reflectance values are kept exactly (bilinear would invent values between
  pixels and need a float dtype; resampling for a model belongs to feature extraction).
- Sentinel-1 GRD: VV and VH backscatter (float32), both at 10 m.

Patches are found at any depth (a folder holding a ``*_labels_metadata.json`` is a patch), so
a root with both S1 and S2 folders gives both. As in main paper section 3.2, discovery lists
the layout and reads the labels from the metadata; pixels are read later, per sample.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np

from samplehub.errors import InvalidSampleError
from samplehub.records import FileEntry, GeoInfo, SampleRecord
from samplehub.sources.base import Source, batched
from samplehub.sources.filesystem import relative
from samplehub.sources.label_tree import LabelTree
from samplehub.sources.readers import GEOTIFF_SUFFIXES, checksum, decode_geotiff, footprint_geo

logger = logging.getLogger(__name__)

METADATA_SUFFIX = "_labels_metadata.json"
BAND_LAYOUTS: dict[str, tuple[str, ...]] = {
    "sentinel-2": (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
    ),
    "sentinel-1": ("VV", "VH"),
}  # fmt: skip
TIME_KEYS = ("acquisition_date", "acquisition_time")  # S2 and S1 metadata respectively
BOTTOM_KEYS = ("lry", "lly")  # the S1 metadata spells the lower-right y "lly"
DETECT_DEPTH = 3  # root -> sensor folder -> patch folder -> metadata file


def find_patches(fs: fsspec.AbstractFileSystem, root: str) -> list[tuple[str, str, list[str]]]:
    """``(folder, metadata path, band file paths)`` of every patch under ``root``, any depth."""
    names_by_folder: dict[str, list[str]] = defaultdict(list)
    for path in sorted(fs.find(root)):
        folder, _, name = path.rpartition("/")
        names_by_folder[folder].append(name)
    patches = []
    for folder, names in names_by_folder.items():
        for name in names:
            if name.endswith(METADATA_SUFFIX):
                prefix = f"{name.removesuffix(METADATA_SUFFIX)}_"
                bands = [
                    f"{folder}/{n}"
                    for n in names
                    if n.startswith(prefix) and n.lower().endswith(GEOTIFF_SUFFIXES)
                ]
                patches.append((folder, f"{folder}/{name}", bands))
    return patches


def band_name(path: str, patch: str) -> str:
    """``.../<patch>_B8A.tif`` -> ``B8A``."""
    name = path.rsplit("/", 1)[-1].removeprefix(f"{patch}_")
    return name.rsplit(".", 1)[0]


def parse_metadata(data: bytes, name: str) -> dict[str, Any]:
    """The metadata JSON object; ``name`` (the file's URI) is quoted in errors."""
    try:
        metadata = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidSampleError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise InvalidSampleError(f"{name}: expected a JSON object, found {type(metadata).__name__}")
    return metadata


def metadata_labels(metadata: dict[str, Any], name: str) -> tuple[str, ...]:
    """The patch's labels (``labels``: a list of class names)."""
    labels = metadata.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InvalidSampleError(f"{name}: `labels` must be a list of class names, got {labels!r}")
    return tuple(labels)


def match_layout(found: list[str], where: str) -> tuple[str, tuple[str, ...]]:
    """The sensor and band order whose layout is exactly the bands ``found``.

    Raises:
        InvalidSampleError: no known layout matches; names ``where`` (the patch folder), the
            bands found, and the closest layout's missing and unexpected bands.
    """
    for sensor, expected in BAND_LAYOUTS.items():
        if sorted(found) == sorted(expected):
            return sensor, expected
    sensor, expected = max(BAND_LAYOUTS.items(), key=lambda item: len(set(item[1]) & set(found)))
    missing = [b for b in expected if b not in found]
    unexpected = sorted(set(found) - set(expected))
    raise InvalidSampleError(
        f"{where}: unknown band layout: found bands {sorted(found)}, expected {sensor} "
        f"{list(expected)} (missing {missing}, unexpected {unexpected}); known layouts: "
        + "; ".join(f"{s} {list(b)}" for s, b in BAND_LAYOUTS.items())
    )


def upsample_nearest(band: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a (H', W') band to (height, width), values unchanged."""
    rows = np.arange(height) * band.shape[0] // height
    cols = np.arange(width) * band.shape[1] // width
    return band[np.ix_(rows, cols)]


def stack_bands(bands: list[np.ndarray]) -> np.ndarray:
    """Stack (H_i, W_i) bands on the finest grid: (C, H, W) with H, W the largest sizes."""
    height = max(b.shape[0] for b in bands)
    width = max(b.shape[1] for b in bands)
    return np.stack([upsample_nearest(b, height, width) for b in bands])


def patch_geo(metadata: dict[str, Any], name: str, width: int) -> GeoInfo:
    """Footprint (EPSG:4326), GSD and acquisition time from the patch metadata."""
    coordinates = metadata.get("coordinates")
    bottom_key = next((k for k in BOTTOM_KEYS if k in (coordinates or {})), BOTTOM_KEYS[0])
    try:
        left, top, right = (float(coordinates[k]) for k in ("ulx", "uly", "lrx"))  # type: ignore[index]
        bottom = float(coordinates[bottom_key])  # type: ignore[index]
        geo = footprint_geo(
            left, bottom, right, top, metadata["projection"], gsd=(right - left) / width
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSampleError(
            f"{name}: cannot read the footprint ({type(exc).__name__}: {exc}); the metadata needs "
            "`coordinates` {ulx, uly, lrx, lry} and a `projection` WKT"
        ) from exc
    geo.time = acquisition_time(metadata, name)
    return geo


def acquisition_time(metadata: dict[str, Any], name: str) -> datetime | None:
    """``acquisition_date`` (S2) or ``acquisition_time`` (S1) as a UTC datetime, if present."""
    value = next((metadata[k] for k in TIME_KEYS if k in metadata), None)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidSampleError(f"{name}: acquisition time {value!r} is not ISO 8601") from exc


class BigEarthNetSource(Source):
    """BigEarthNet-S2 / -S1 patch folders (Sumbul et al., 2019), found at any depth.

    Options:
        discovery_threads: threads reading metadata during discovery (default 8).

    Entries: ``uri`` is the patch folder, ``files`` its band GeoTIFFs then its metadata JSON,
    ``labels`` the metadata's CORINE classes. Records: S2 (12, 120, 120) uint16 or S1
    (2, 120, 120) float32, sensor ``sentinel-2``/``sentinel-1``, footprint and time from the
    metadata.
    """

    kind = "bigearthnet"
    _entries: list[FileEntry] | None = None

    @classmethod
    def detect(cls, fs: fsspec.AbstractFileSystem, root: str) -> bool:
        """A ``*_labels_metadata.json`` within three levels (looking into a few folders each)."""
        if not fs.isdir(root):
            return False
        frontier = [root]
        for _ in range(DETECT_DEPTH):
            folders = []
            for folder in frontier[:4]:
                for info in fs.ls(folder, detail=True):
                    name = info["name"].rstrip("/")
                    if name.endswith(METADATA_SUFFIX):
                        return True
                    if info["type"] == "directory":
                        folders.append(name)
            frontier = sorted(folders)
        return False

    def label_tree(self) -> LabelTree:
        """All CORINE classes found in the metadata (flat), with patch counts."""
        tree = LabelTree()
        for entry in self.entries():
            for label in entry.labels:
                tree.add_path((label,))
            tree.count(entry.labels)
        return tree

    def discover(self, batch_size: int = 2048) -> Iterator[list[FileEntry]]:
        """One entry per patch folder, in path order."""
        yield from batched(self.entries(), batch_size)

    def entries(self) -> list[FileEntry]:
        """Every patch's entry; metadata read in parallel, once per source."""
        if self._entries is None:
            patches = find_patches(self.fs, self.root)
            threads = int(self.spec.options.get("discovery_threads", 8))
            with ThreadPoolExecutor(max_workers=threads) as pool:
                self._entries = list(pool.map(lambda p: self.entry_for(*p), patches))
        return self._entries

    def entry_for(self, folder: str, metadata: str, bands: list[str]) -> FileEntry:
        """The entry of one patch; broken metadata is logged and left for :meth:`read`."""
        try:
            labels = metadata_labels(parse_metadata(self.read_bytes(metadata), metadata), metadata)
        except InvalidSampleError as exc:
            logger.warning("%s (the patch will be quarantined when read)", exc)
            labels = ()
        return FileEntry(
            dataset=self.spec.name,
            relpath=relative(folder, self.root) or folder.rsplit("/", 1)[-1],
            uri=self.uri_of(folder),
            labels=labels,
            files=(*(self.uri_of(b) for b in bands), self.uri_of(metadata)),
        )

    def read(self, entry: FileEntry) -> SampleRecord:
        """Stack the patch's bands on the 10 m grid, with footprint and time.

        Raises:
            InvalidSampleError: unknown band layout, unreadable band, broken metadata.
        """
        metadata_uri = entry.files[-1] if entry.files else ""
        if not metadata_uri.endswith(METADATA_SUFFIX):
            raise InvalidSampleError(f"{entry.uri}: no *{METADATA_SUFFIX} file in the patch entry")
        patch = metadata_uri.rsplit("/", 1)[-1].removesuffix(METADATA_SUFFIX)
        files = {band_name(f, patch): f for f in entry.files[:-1]}
        sensor, order = match_layout(list(files), entry.uri)
        metadata_bytes = self.read_bytes(metadata_uri)
        metadata = parse_metadata(metadata_bytes, metadata_uri)
        band_bytes = [self.read_bytes(files[band]) for band in order]
        image = stack_bands(
            [self.decode_band(data, files[b]) for data, b in zip(band_bytes, order, strict=True)]
        )
        return SampleRecord(
            entry=entry,
            image=image,
            band_names=order,
            sensor=sensor,
            geo=patch_geo(metadata, metadata_uri, image.shape[2]),
            checksum=checksum(b"".join([metadata_bytes, *band_bytes])),
        )

    @staticmethod
    def decode_band(data: bytes, name: str) -> np.ndarray:
        """One single-band GeoTIFF as a (H, W) array."""
        image: np.ndarray = decode_geotiff(data, name).image
        if image.shape[0] != 1:
            raise InvalidSampleError(f"{name}: expected one band, found {image.shape[0]}")
        band: np.ndarray = image[0]
        return band
