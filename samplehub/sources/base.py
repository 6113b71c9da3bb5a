"""The shared shape of every dataset source.

A source is configured by a :class:`SourceSpec` (one ``conf/sources/*.yaml`` file or a
``samplehub ingest`` call) and does three things, each a pure function of its inputs so
that threads or Spark executors (:mod:`samplehub.executors`) run them on batches alike:

1. :meth:`Source.label_tree` — breadth-first over the layout, the dataset's labels;
2. :meth:`Source.discover` — batches of :class:`~samplehub.records.FileEntry`;
3. :meth:`Source.read` — one entry to a :class:`~samplehub.records.SampleRecord`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import fsspec

from samplehub.errors import ConfigError, InvalidSampleError
from samplehub.records import FileEntry, SampleRecord
from samplehub.sources.filesystem import (
    ReadThroughCache,
    check_root,
    filesystem_for,
    is_remote,
)
from samplehub.sources.label_tree import LabelTree
from samplehub.sources.readers import checksum, decode_image


@dataclass(frozen=True)
class SourceSpec:
    """Where a dataset lives and how to read it.

    Attributes:
        name: dataset name; becomes the Dagster partition key and the catalog partition.
        uri: local folder/file or ``s3://bucket/prefix``.
        kind: source kind (``folder_tree``, ``multilabel_manifest``, ``bigearthnet``,
            ``geotiff``); ``auto`` detects it from the layout.
        options: kind-specific settings (e.g. ``images`` for a manifest).
        storage_options: fsspec/s3fs options (``endpoint_url``, ``key``, ``secret``).
        platform, licence, citation: provenance recorded in the ``datasets`` registry.
    """

    name: str
    uri: str
    kind: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    platform: str = "local"
    licence: str = ""
    citation: str = ""

    @classmethod
    def from_record(cls, record: object, **values: Any) -> SourceSpec:
        """A spec from a record that names some of its fields, e.g. a source file's schema.

        Args:
            record: any object; each of its attributes named like a field of the spec
                (``kind``, ``platform``, ``licence``, ...) gives that field.
            values: fields set here, over the record's (``uri`` resolved, or the fields a
                record names otherwise, like the ``datasets`` registry's ``source_uri``).

        Returns:
            The spec; fields neither the record nor ``values`` give keep their defaults.
        """
        found = {f.name: getattr(record, f.name) for f in fields(cls) if hasattr(record, f.name)}
        return cls(**{**found, **values})


class Source(ABC):
    """Base class: subclasses declare ``kind`` and implement discovery and reading."""

    kind: ClassVar[str]

    def __init__(self, spec: SourceSpec, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.spec = spec
        self.fs: fsspec.AbstractFileSystem = filesystem_for(spec.uri, spec.storage_options)
        self.root = check_root(self.fs, spec.uri)
        self.cache = (
            ReadThroughCache(cache_dir) if cache_dir is not None and is_remote(spec.uri) else None
        )

    @classmethod
    def detect(cls, fs: fsspec.AbstractFileSystem, root: str) -> bool:
        """True when the layout under ``root`` looks like this kind of source."""
        return False

    @abstractmethod
    def label_tree(self) -> LabelTree:
        """The dataset's labels (breadth-first over folders, or from the manifest)."""

    @abstractmethod
    def discover(self, batch_size: int = 2048) -> Iterator[list[FileEntry]]:
        """Yield batches of entries, one per sample."""

    def read(self, entry: FileEntry) -> SampleRecord:
        """Read one single-file sample; multi-file kinds override this."""
        data = self.read_bytes(self.confined(entry.uri))
        raster = decode_image(data, entry.uri)
        return SampleRecord(
            entry=entry,
            image=raster.image,
            band_names=raster.band_names,
            sensor=self.spec.options.get("sensor"),
            geo=raster.geo,
            checksum=checksum(data),
        )

    def read_bytes(self, path: str, fs: fsspec.AbstractFileSystem | None = None) -> bytes:
        """All bytes of ``path`` on ``fs`` (default: the source's), through the cache if any.

        Raises:
            InvalidSampleError: the file is missing or unreadable; the message names it.
        """
        fs = fs or self.fs
        try:
            if self.cache is not None:
                return self.cache.read(fs, path)
            with fs.open(path, "rb") as f:
                return f.read()  # type: ignore[no-any-return]
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise InvalidSampleError(f"{path}: cannot read file ({exc})") from exc

    @property
    def files_root(self) -> str:
        """The folder every sample file must stay under (the root, or a file root's folder)."""
        return self.root if os.path.isdir(self.root) else os.path.dirname(self.root)

    def confined(self, path: str) -> str:
        """``path``, once it is known to stay under a local source's root.

        A symlink inside a dataset folder may point anywhere on the machine; a sample whose
        file resolves outside the root is refused (the ingest quarantines it with this
        reason), so a dataset cannot pull in files its folder does not hold.

        Raises:
            InvalidSampleError: ``path`` resolves outside the root.
        """
        if is_remote(self.spec.uri):
            return path
        real, root = os.path.realpath(path), os.path.realpath(self.files_root)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise InvalidSampleError(
                f"{path}: a link to {real}, outside the source root {root}; not read")
        return path

    def uri_of(self, path: str) -> str:
        """The user-facing URI of an fs path (``s3://`` prefix restored for buckets)."""
        if "://" in self.spec.uri and not self.spec.uri.startswith("file://"):
            return f"{self.spec.uri.split('://', 1)[0]}://{path}"
        return path


def batched(entries: Iterable[FileEntry], batch_size: int) -> Iterator[list[FileEntry]]:
    """Group ``entries`` into lists of at most ``batch_size`` (the last may be shorter)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    batch: list[FileEntry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
