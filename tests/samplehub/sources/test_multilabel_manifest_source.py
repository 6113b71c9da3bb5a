"""Multi-label manifest source on the fixture manifest (local disk and loopback S3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from samplehub.errors import InvalidSampleError, ManifestError, ManifestRowError
from samplehub.sources import Source, SourceSpec, open_source

if TYPE_CHECKING:
    from conftest import Entries, Where

HEADER = "IMAGE\\LABEL\tbuildings\tcars\ttrees\twater"


def manifest_source(where: Where) -> Source:
    return where.open(
        "ml",
        "multilabel_manifest",
        "manifest.txt",
        options={"images": where.uri("multilabel_manifest", "images")},
    )


def test_label_tree_is_the_flat_header_with_counts(where: Where) -> None:
    source = manifest_source(where)
    tree = source.label_tree()
    assert source.kind == "multilabel_manifest"
    assert tree.nodes() == [("buildings", None), ("cars", None), ("trees", None), ("water", None)]
    assert dict(tree.counts) == {"buildings": 2, "cars": 1, "trees": 2, "water": 1}


def test_rows_are_joined_to_images_found_recursively(where: Where, entries: Entries) -> None:
    found = entries(manifest_source(where))
    assert [(e.relpath, e.labels) for e in found] == [
        ("residential/residential00.jpg", ("buildings", "cars", "trees")),
        ("residential/residential01.jpg", ("buildings",)),
        ("river/river00.jpg", ("trees", "water")),
    ]
    assert found[2].uri == where.uri("multilabel_manifest", "images", "river/river00.jpg")


def test_read_gives_the_joined_image(where: Where, entries: Entries) -> None:
    source = manifest_source(where)
    record = source.read(entries(source)[0])
    assert record.shape == (3, 24, 24)
    assert record.image.dtype == np.uint8
    assert record.entry.labels == ("buildings", "cars", "trees")


def test_images_default_to_the_manifest_folder(where: Where, entries: Entries) -> None:
    source = where.open("ml", "multilabel_manifest", "manifest.txt")
    assert len(entries(source)) == 3


def write_manifest(folder: Path, *rows: str, header: str = HEADER) -> Path:
    """A CRLF manifest with ``rows`` in ``folder`` (beside the fixture ``images``)."""
    path = folder / "manifest.txt"
    path.write_bytes("\r\n".join([header, *rows, ""]).encode())
    return path


def open_manifest(path: Path) -> Source:
    """The manifest source of ``path`` joined to the ``images`` folder beside it."""
    images = str(path.parent / "images")
    return open_source(
        SourceSpec("ml", str(path), kind="multilabel_manifest", options={"images": images})
    )


def test_a_row_naming_a_missing_image_is_quarantined_not_fatal(
    fixture_copy: Path, entries: Entries
) -> None:
    folder = fixture_copy / "multilabel_manifest"
    path = write_manifest(
        folder, "residential00\t1\t0\t0\t0", "ghost07\t0\t0\t1\t1", "river00\t0\t0\t1\t1"
    )
    source = open_manifest(path)
    found = entries(source)
    assert [e.relpath for e in found] == [
        "residential/residential00.jpg",
        "ghost07",
        "river/river00.jpg",
    ]
    with pytest.raises(ManifestRowError) as info:
        source.read(found[1])
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "'ghost07'" in message
    assert isinstance(info.value, ManifestError) and isinstance(info.value, InvalidSampleError)
    assert [source.read(e).shape for e in (found[0], found[2])] == [(3, 24, 24)] * 2


@pytest.mark.parametrize(
    ("header", "row", "where_"),
    [
        ("IMAGE\tbuildings\tcars\ttrees\twater", "river00\t0\t0\t1\t1", "line 1, column 1"),
        ("river00\t0\t0\t1\t1", "river00\t0\t0\t1\t1", "line 1, column 1"),
        ("IMAGE\\LABEL\tbuildings\t\ttrees\twater", "river00\t0\t0\t1\t1", "line 1, column 3"),
        (HEADER, "river00\t0\t0\t1", "line 2: expected 5 tab-separated columns"),
        (HEADER, "river00 0 0 1 1", "line 2: expected 5 tab-separated columns"),
        (HEADER, "river00\t0\t2\t1\t1", "line 2, column 3 (label 'cars'): value '2'"),
        (HEADER, "river00\t0\t0\tyes\t1", "line 2, column 4 (label 'trees'): value 'yes'"),
        (HEADER, "\t0\t0\t1\t1", "line 2, column 1: the image id is empty"),
    ],
)
def test_a_malformed_manifest_names_file_line_and_column(
    fixture_copy: Path, header: str, row: str, where_: str
) -> None:
    path = write_manifest(fixture_copy / "multilabel_manifest", row, header=header)
    source = open_manifest(path)
    with pytest.raises(ManifestError, match=str(path)) as info:
        source.label_tree()
    assert where_ in str(info.value)


def test_a_repeated_image_id_is_malformed(fixture_copy: Path, entries: Entries) -> None:
    folder = fixture_copy / "multilabel_manifest"
    path = write_manifest(folder, "river00\t0\t0\t1\t1", "", "river00\t0\t0\t0\t1")
    with pytest.raises(ManifestError, match=r"line 4, column 1: image 'river00' .* line 2"):
        entries(open_manifest(path))


def test_an_empty_manifest_is_malformed(fixture_copy: Path) -> None:
    path = fixture_copy / "multilabel_manifest" / "manifest.txt"
    path.write_bytes(b"")
    with pytest.raises(ManifestError, match="manifest is empty"):
        open_manifest(path).label_tree()


def test_an_ambiguous_image_id_is_reported_with_both_files(
    fixture_copy: Path, entries: Entries
) -> None:
    images = fixture_copy / "multilabel_manifest" / "images"
    (images / "river" / "river00.jpg").rename(images / "river" / "river00.png")
    (images / "residential" / "river00.jpg").write_bytes(b"x")
    path = fixture_copy / "multilabel_manifest" / "manifest.txt"
    with pytest.raises(ManifestError, match=r"line 4: image id 'river00' matches 2 files"):
        entries(open_manifest(path))
