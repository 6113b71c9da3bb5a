r"""Multi-label manifests joined to a folder of images: the UC Merced multi-label format.

The UC Merced multi-label annotation (Chaudhuri et al., IEEE TGRS 2017) is a tab-separated
file with CRLF line ends: a header ``IMAGE\LABEL<TAB>airplane<TAB>...<TAB>water`` and one
row per image, ``agricultural00<TAB>0<TAB>1<TAB>...``. The image id is the file stem of an
image found anywhere under ``options["images"]`` (default: the manifest's folder).

As for folder trees (main paper, section 3.2) the label category system comes first (the
header: a flat list of labels), then the samples (the rows, each joined to its image).
A malformed manifest is fatal (:class:`~samplehub.errors.ManifestError` naming file, line
and column). A row whose image is missing is not: discovery yields it with a ``uri`` that
points at the manifest line (``<manifest>#line=<n>``), and :meth:`read` raises
:class:`~samplehub.errors.ManifestRowError` for it, so the ingest pipeline quarantines the
row like any unreadable sample and ingests the rest.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec

from samplehub.errors import ManifestError, ManifestRowError
from samplehub.records import FileEntry, SampleRecord
from samplehub.sources.base import Source, SourceSpec, batched
from samplehub.sources.filesystem import check_root, filesystem_for, is_remote, relative
from samplehub.sources.label_tree import LabelTree
from samplehub.sources.readers import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

HEADER_FIRST_CELL = "IMAGE\\LABEL"
MANIFEST_SUFFIXES = (".txt", ".tsv")
MISSING_MARK = "#line="


@dataclass(frozen=True)
class ManifestRow:
    """One parsed row: its 1-based line number, image id and positive labels."""

    line: int
    image_id: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: the header's labels and the rows, in file order."""

    labels: tuple[str, ...]
    rows: tuple[ManifestRow, ...]


def parse_manifest(text: str, name: str) -> Manifest:
    """Parse manifest text; ``name`` (the file's URI) is quoted in every error.

    Raises:
        ManifestError: bad header, wrong column count, a value other than 0/1, an empty or
            repeated image id; the message gives file, line and column.
    """
    lines = text.splitlines()
    if not lines:
        raise ManifestError(
            f"{name}: the manifest is empty; expected a header line {header_hint()}"
        )
    labels = parse_header(lines[0], name)
    rows: list[ManifestRow] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        row = parse_row(line, number, labels, name)
        if row.image_id in first_seen:
            raise ManifestError(
                f"{name}, line {number}, column 1: image {row.image_id!r} is already listed on "
                f"line {first_seen[row.image_id]}; keep one of the two rows"
            )
        first_seen[row.image_id] = number
        rows.append(row)
    return Manifest(labels, tuple(rows))


def header_hint() -> str:
    """How a header line should look, for error messages."""
    return f"`{HEADER_FIRST_CELL}<TAB>label1<TAB>label2...` (tab-separated)"


def parse_header(line: str, name: str) -> tuple[str, ...]:
    """The label names of the header line (line 1)."""
    cells = [cell.strip() for cell in line.split("\t")]
    if cells[0].upper() != HEADER_FIRST_CELL or len(cells) < 2:
        raise ManifestError(
            f"{name}, line 1, column 1: expected the header {header_hint()}, found {line[:60]!r}"
        )
    seen: set[str] = set()
    for column, label in enumerate(cells[1:], start=2):
        if not label or label in seen:
            problem = "an empty label name" if not label else f"label {label!r} twice"
            raise ManifestError(f"{name}, line 1, column {column}: the header has {problem}")
        seen.add(label)
    return tuple(cells[1:])


def parse_row(line: str, number: int, labels: tuple[str, ...], name: str) -> ManifestRow:
    """One data row: the image id and the labels whose column holds ``1``."""
    cells = [cell.strip() for cell in line.split("\t")]
    if len(cells) != len(labels) + 1:
        raise ManifestError(
            f"{name}, line {number}: expected {len(labels) + 1} tab-separated columns "
            f"(the image id and {len(labels)} labels), found {len(cells)}"
        )
    if not cells[0]:
        raise ManifestError(f"{name}, line {number}, column 1: the image id is empty")
    positives = []
    for column, (label, value) in enumerate(zip(labels, cells[1:], strict=True), start=2):
        if value not in ("0", "1"):
            raise ManifestError(
                f"{name}, line {number}, column {column} (label {label!r}): "
                f"value {value!r} is not 0 or 1"
            )
        if value == "1":
            positives.append(label)
    return ManifestRow(number, cells[0], tuple(positives))


def image_index(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, list[str]]:
    """Image file stem -> the image paths under ``root`` (any depth) with that stem."""
    index: dict[str, list[str]] = defaultdict(list)
    for path in sorted(fs.find(root)):
        base = path.rsplit("/", 1)[-1]
        if not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES):
            index[base.rsplit(".", 1)[0]].append(path)
    return index


def parent_uri(uri: str) -> str:
    """The folder (or prefix) holding ``uri``."""
    if is_remote(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri.removeprefix("file://")).expanduser().resolve().parent)


class MultilabelManifestSource(Source):
    """A UC Merced style multi-label TSV joined to its images.

    Options:
        images: the image root (local folder or ``s3://`` prefix), searched recursively
            for files whose stem is a row's image id; default: the manifest's folder.
        sensor: recorded on every sample (optional).

    Entries: ``relpath`` is the image path relative to the image root, ``labels`` the row's
    positive labels. The label tree is flat (the header's labels).
    """

    kind = "multilabel_manifest"

    def __init__(self, spec: SourceSpec, cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(spec, cache_dir)
        self.manifest_fs = self.fs
        self.images_uri = str(spec.options.get("images") or parent_uri(spec.uri))
        self.fs = filesystem_for(self.images_uri, spec.storage_options)
        self.images_root = check_root(self.fs, self.images_uri)
        self._manifest: Manifest | None = None

    @classmethod
    def detect(cls, fs: fsspec.AbstractFileSystem, root: str) -> bool:
        r"""A ``.txt``/``.tsv`` file whose first line starts with ``IMAGE\LABEL``."""
        if not root.lower().endswith(MANIFEST_SUFFIXES) or not fs.isfile(root):
            return False
        with fs.open(root, "rb") as f:
            head: bytes = f.read(len(HEADER_FIRST_CELL) + 3)
        return head.decode("utf-8-sig", errors="replace").upper().startswith(HEADER_FIRST_CELL)

    def manifest(self) -> Manifest:
        """The parsed manifest (read once per source)."""
        if self._manifest is None:
            data = self.read_bytes(self.root, self.manifest_fs)
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ManifestError(
                    f"{self.spec.uri}: not UTF-8 text ({exc}); save the manifest as UTF-8"
                ) from exc
            self._manifest = parse_manifest(text, self.spec.uri)
        return self._manifest

    @property
    def files_root(self) -> str:
        """The images' folder (``options["images"]``), which may lie beside the manifest."""
        return self.images_root

    def label_tree(self) -> LabelTree:
        """The header's labels (flat), counted over all rows."""
        manifest = self.manifest()
        tree = LabelTree()
        for label in manifest.labels:
            tree.add_path((label,))
        for row in manifest.rows:
            tree.count(row.labels)
        return tree

    def discover(self, batch_size: int = 2048) -> Iterator[list[FileEntry]]:
        """One entry per row, joined to its image by file stem, in manifest order."""
        index = image_index(self.fs, self.images_root)
        yield from batched((self.join(row, index) for row in self.manifest().rows), batch_size)

    def join(self, row: ManifestRow, index: dict[str, list[str]]) -> FileEntry:
        """The entry of ``row``; a missing image gives an entry that :meth:`read` rejects."""
        paths = index.get(row.image_id, [])
        if len(paths) > 1:
            raise ManifestError(
                f"{self.spec.uri}, line {row.line}: image id {row.image_id!r} matches "
                f"{len(paths)} files ({', '.join(paths[:3])}); make image stems unique"
            )
        if not paths:
            logger.warning("%s", self.missing_image_message(row.line, row.image_id))
            return FileEntry(
                dataset=self.spec.name,
                relpath=row.image_id,
                uri=f"{self.spec.uri}{MISSING_MARK}{row.line}",
                labels=row.labels,
            )
        return FileEntry(
            dataset=self.spec.name,
            relpath=relative(paths[0], self.images_root),
            uri=self.image_uri(paths[0]),
            labels=row.labels,
        )

    def read(self, entry: FileEntry) -> SampleRecord:
        """Read the joined image.

        Raises:
            ManifestRowError: the entry's row names an image that is not under the image root.
            InvalidSampleError: the image is corrupt or unreadable.
        """
        if MISSING_MARK in entry.uri:
            line = int(entry.uri.rsplit(MISSING_MARK, 1)[1])
            raise ManifestRowError(self.missing_image_message(line, entry.relpath))
        return super().read(entry)

    def missing_image_message(self, line: int, image_id: str) -> str:
        """The report of a row whose image is missing: manifest, line, image id and fix."""
        return (
            f"{self.spec.uri}, line {line}: image {image_id!r} not found under "
            f"{self.images_uri} (no file with that stem and one of {', '.join(IMAGE_SUFFIXES)}); "
            "add the image or remove the row"
        )

    def image_uri(self, path: str) -> str:
        """The user-facing URI of an image path (``s3://`` restored for buckets)."""
        if is_remote(self.images_uri):
            return f"{self.images_uri.split('://', 1)[0]}://{path}"
        return path
