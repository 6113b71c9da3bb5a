"""Folder-per-class source on the fixture tree (local disk and loopback S3)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from samplehub.errors import ConfigError, InvalidSampleError, SourceNotFoundError
from samplehub.sources import SourceSpec, detect_kind, open_source
from samplehub.sources.folder_tree import FolderTreeSource

if TYPE_CHECKING:
    from conftest import Entries, Where


def test_nested_folders_become_a_label_hierarchy(where: Where) -> None:
    tree = where.open("tree", "folder_tree").label_tree()
    assert tree.parents == {"farmland": None, "forest": None, "water": None, "river": "water"}
    assert tree.leaves == ["farmland", "forest", "river"]


def test_discovery_finds_every_image_with_its_label_path(where: Where, entries: Entries) -> None:
    source = where.open("tree", "folder_tree")
    found = entries(source)
    assert source.kind == "folder_tree"
    assert Counter(e.labels for e in found) == {("farmland",): 4, ("forest",): 4, ("river",): 4}
    river = next(e for e in found if e.relpath == "water/river/river00.jpg")
    assert river.label_path == ("water", "river")
    assert river.uri == where.uri("folder_tree", "water/river/river00.jpg")
    assert len({e.sample_id for e in found}) == 12


def test_discovery_yields_batches_of_the_requested_size(where: Where) -> None:
    source = where.open("tree", "folder_tree")
    assert [len(batch) for batch in source.discover(batch_size=5)] == [5, 5, 2]


def test_read_gives_rgb_uint8_chw(where: Where, entries: Entries) -> None:
    source = where.open("tree", "folder_tree")
    record = source.read(entries(source)[0])
    assert record.shape == (3, 24, 24)
    assert record.image.dtype == np.uint8
    assert record.band_names == ("red", "green", "blue")
    assert len(record.checksum) == 32
    assert record.geo.bbox is None


def break_image(root: Path, how: str) -> Path:
    """Damage ``farmland/farmland01.jpg`` under ``root`` and return its path."""
    path = root / "folder_tree" / "farmland" / "farmland01.jpg"
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "empty": b"", "not-an-image": b"<html>"}
    path.write_bytes(damaged[how])
    return path


@pytest.mark.parametrize("how", ["truncated", "empty", "not-an-image"])
def test_a_bad_image_raises_invalid_sample_naming_the_file(
    fixture_copy: Path, entries: Entries, how: str
) -> None:
    bad = break_image(fixture_copy, how)
    source = open_source(SourceSpec("tree", str(fixture_copy / "folder_tree")))
    found = {e.uri: e for e in entries(source)}
    with pytest.raises(InvalidSampleError, match=bad.name) as info:
        source.read(found[str(bad)])
    assert str(bad) in str(info.value)
    good = next(uri for uri in found if uri != str(bad))
    assert source.read(found[good]).shape == (3, 24, 24)


def test_empty_class_folder_is_reported(fixture_copy: Path) -> None:
    (fixture_copy / "folder_tree" / "desert").mkdir()
    (fixture_copy / "folder_tree" / "forest" / "notes.txt").write_text("not an image")
    source = FolderTreeSource(SourceSpec("tree", str(fixture_copy / "folder_tree")))
    assert source.empty_label_folders() == [str(fixture_copy / "folder_tree" / "desert")]
    assert "desert" in source.label_tree().parents


def test_a_folder_without_class_folders_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "lonely.jpg").write_bytes(b"")
    source = FolderTreeSource(SourceSpec("flat", str(tmp_path)))
    with pytest.raises(SourceNotFoundError, match=str(tmp_path)):
        source.label_tree()


def test_a_missing_folder_raises_source_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceNotFoundError, match="nowhere"):
        open_source(SourceSpec("x", str(missing), kind="folder_tree"))


@pytest.mark.parametrize(
    ("parts", "kind"),
    [
        (("folder_tree",), "folder_tree"),
        (("multilabel_manifest", "manifest.txt"), "multilabel_manifest"),
        (("bigearthnet",), "bigearthnet"),
        (("bigearthnet", "S2"), "bigearthnet"),
        (("geotiff",), "geotiff"),
        (("geotiff", "scene_a.tif"), "geotiff"),
    ],
)
def test_auto_detection_picks_the_kind_from_the_layout(
    where: Where, parts: tuple[str, ...], kind: str
) -> None:
    assert detect_kind(where.spec("x", *parts)) == kind


def test_an_unrecognised_layout_asks_for_a_kind(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("nothing to ingest")
    with pytest.raises(ConfigError, match=rf"{tmp_path}: cannot tell what kind of dataset"):
        open_source(SourceSpec("x", str(tmp_path)))


def test_a_zero_batch_size_is_a_config_error(where: Where) -> None:
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        next(where.open("tifs", "geotiff").discover(batch_size=0))
