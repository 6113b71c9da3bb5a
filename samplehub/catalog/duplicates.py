"""Images that the catalog holds more than once, found by their content hash (DESIGN 4-5).

Two datasets can ship the same image: ``ucmerced_multilabel`` annotates the 2,100 images
of ``ucmerced``, and a re-published dataset may re-encode another's files. Every sample's
``content_hash`` hashes its decoded pixels (:func:`samplehub.records.content_hash`), so
catalog rows with one hash are copies of one image, whatever their file format. A copy
lists its own dataset's labels; the image carries all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from samplehub.catalog.delta import Catalog

COLUMNS = ["sample_id", "dataset", "relpath", "labels", "content_hash"]


@dataclass(frozen=True)
class Copy:
    """One catalogued copy of an image: which sample and the labels its dataset gives it."""

    sample_id: int
    dataset: str
    relpath: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateImage:
    """An image catalogued more than once.

    Attributes:
        content_hash: the hash of its decoded pixels.
        copies: its catalog rows, ordered by dataset and relative path.
    """

    content_hash: str
    copies: tuple[Copy, ...]

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets holding a copy, sorted, each once."""
        return tuple(sorted({c.dataset for c in self.copies}))

    @property
    def labels(self) -> tuple[str, ...]:
        """Every copy's labels, each once, in the order of the copies."""
        return tuple(dict.fromkeys(label for c in self.copies for label in c.labels))


@dataclass
class DuplicateReport:
    """What :func:`find_duplicates` found.

    Attributes:
        images: images with two or more copies, ordered by datasets and first copy.
        samples: catalog rows looked at.
        unhashed: dataset -> rows without a content hash (catalogued before hashes were
            recorded; ``samplehub ingest <dataset>`` fills them in).
    """

    images: list[DuplicateImage]
    samples: int
    unhashed: dict[str, int] = field(default_factory=dict)

    @property
    def copies(self) -> int:
        """Catalog rows that are copies of a duplicated image."""
        return sum(len(image.copies) for image in self.images)

    def by_datasets(self) -> dict[tuple[str, ...], int]:
        """Duplicated images per set of datasets holding them, most first."""
        counts = Counter(image.datasets for image in self.images)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def find_duplicates(catalog: Catalog, datasets: Sequence[str] | None = None) -> DuplicateReport:
    """Group the catalog's samples by content hash and keep the groups of two or more.

    Args:
        catalog: the catalog.
        datasets: only images with a copy in one of these datasets (every copy is still
            listed, in whichever dataset it is); ``None`` for all.

    Returns:
        The duplicated images, the number of rows looked at and the rows that have no hash.

    Raises:
        DatasetNotFoundError: a name in ``datasets`` was never ingested.
    """
    for name in datasets or ():
        catalog.dataset(name)
    table = catalog.read("samples", columns=COLUMNS)
    hashes = table.column("content_hash")
    unhashed = Counter(table.filter(pc.is_null(hashes)).column("dataset").to_pylist())
    if datasets is not None:
        unhashed = Counter({d: n for d, n in unhashed.items() if d in datasets})
    hashed = table.filter(pc.is_valid(hashes))
    counts = pc.value_counts(hashed.column("content_hash"))
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    rows = hashed.filter(pc.is_in(hashed.column("content_hash"), repeated))
    rows = rows.sort_by([("content_hash", "ascending"), ("dataset", "ascending"),
                         ("relpath", "ascending")])
    images = list(group_copies(rows))
    if datasets is not None:
        wanted = set(datasets)
        images = [image for image in images if wanted.intersection(image.datasets)]
    images.sort(key=lambda image: (image.datasets, image.copies[0].dataset,
                                   image.copies[0].relpath))
    return DuplicateReport(images=images, samples=table.num_rows, unhashed=dict(unhashed))


def group_copies(rows: pa.Table) -> list[DuplicateImage]:
    """Consecutive rows sharing a ``content_hash`` as one image each (rows sorted by hash)."""
    images: list[DuplicateImage] = []
    current: list[Copy] = []
    current_hash: str | None = None
    for row in rows.to_pylist():
        if row["content_hash"] != current_hash and current:
            images.append(DuplicateImage(current_hash or "", tuple(current)))
            current = []
        current_hash = row["content_hash"]
        current.append(
            Copy(row["sample_id"], row["dataset"], row["relpath"], tuple(row["labels"] or ()))
        )
    if current:
        images.append(DuplicateImage(current_hash or "", tuple(current)))
    return images
