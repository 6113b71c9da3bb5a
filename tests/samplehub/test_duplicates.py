"""Content hashes of decoded pixels and the duplicates they reveal (DESIGN sections 4-5).

The fixture pair: ``tree`` is ``tests/data/folder_tree``; ``copy`` holds its four forest
images decoded and saved again as PNG (same pixels, other bytes) under ``trees/``, plus
one image whose pixels differ by one value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake
from PIL import Image
from typer.testing import CliRunner

from samplehub.catalog import find_duplicates
from samplehub.cli.main import app
from samplehub.config import load_config
from samplehub.records import content_hash
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"
FORESTS = sorted((FIXTURES / "folder_tree" / "forest").glob("*.jpg"))


def reencoded_copy(root: Path) -> Path:
    """The ``copy`` dataset of the module docstring."""
    for path in FORESTS:
        target = root / "trees" / f"{path.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).save(target)
    pixels = np.asarray(Image.open(FIXTURES / "folder_tree" / "farmland" / "farmland00.jpg"))
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    (root / "fields").mkdir()
    Image.fromarray(changed).save(root / "fields" / "farmland00.png")
    return root


@pytest.fixture
def repo(home: Path, tmp_path: Path) -> Repository:
    """``tree`` and ``copy`` ingested into a fresh home."""
    repo = Repository(load_config(["executor.workers=2", "executor.batch_size=5"]))
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    repo.ingest(SourceSpec(name="copy", uri=str(reencoded_copy(tmp_path / "copy"))))
    return repo


def test_content_hash_is_of_pixels_shape_and_dtype() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(3, 8, 6), dtype=np.uint8)
    assert content_hash(image) == content_hash(np.asfortranarray(image))
    assert content_hash(image) == content_hash(image.copy())
    assert content_hash(image) != content_hash(image.reshape(3, 6, 8))
    assert content_hash(image) != content_hash(image.astype(np.uint16))
    wide = rng.integers(0, 10_000, size=(2, 4, 4)).astype(">u2")
    assert content_hash(wide) == content_hash(wide.astype("<u2"))
    assert len(content_hash(image)) == 32


def test_reencoded_images_share_the_hash_but_not_the_checksum(repo: Repository) -> None:
    rows = repo.catalog.read("samples", columns=["dataset", "relpath", "checksum",
                                                 "content_hash"]).to_pylist()
    by_path = {(r["dataset"], r["relpath"]): r for r in rows}
    for path in FORESTS:
        jpeg = by_path[("tree", f"forest/{path.name}")]
        png = by_path[("copy", f"trees/{path.stem}.png")]
        assert jpeg["content_hash"] == png["content_hash"]
        assert jpeg["checksum"] != png["checksum"]
    assert (by_path[("tree", "farmland/farmland00.jpg")]["content_hash"]
            != by_path[("copy", "fields/farmland00.png")]["content_hash"])
    assert len({r["content_hash"] for r in rows}) == len(rows) - len(FORESTS)


def test_duplicates_lists_each_image_once_with_every_label(repo: Repository) -> None:
    report = find_duplicates(repo.catalog)
    assert len(report.images) == len(FORESTS) and report.copies == 2 * len(FORESTS)
    assert report.samples == 12 + len(FORESTS) + 1 and not report.unhashed
    assert report.by_datasets() == {("copy", "tree"): len(FORESTS)}
    first = report.images[0]
    assert [(c.dataset, c.relpath) for c in first.copies] == [
        ("copy", "trees/forest00.png"), ("tree", "forest/forest00.jpg")
    ]
    assert first.labels == ("trees", "forest")
    assert find_duplicates(repo.catalog, ["tree"]).images == report.images


def test_reingest_is_idempotent(repo: Repository, tmp_path: Path) -> None:
    version = repo.catalog.table("samples").version()
    again = repo.ingest(SourceSpec(name="copy", uri=str(tmp_path / "copy")))
    assert (again.added, again.hashed) == (0, 0)
    assert repo.catalog.table("samples").version() == version


def test_a_catalog_written_before_content_hashes_loads_and_is_filled_in_on_reingest(
    repo: Repository, tmp_path: Path
) -> None:
    old = repo.catalog.read("samples").drop_columns(["content_hash"])
    write_deltalake(repo.catalog.uri("samples"), old, partition_by=["dataset"],
                    mode="overwrite", schema_mode="overwrite")
    assert repo.catalog.missing_columns("samples") == ["content_hash"]
    loaded = repo.catalog.read("samples")
    assert loaded.column_names[-1] == "content_hash"
    assert loaded.column("content_hash").null_count == loaded.num_rows
    frame = repo.catalog.samples("tree", columns=["relpath", "content_hash"])
    assert frame["content_hash"].isna().all()

    stale = find_duplicates(repo.catalog)
    assert stale.images == [] and stale.unhashed == {"tree": 12, "copy": len(FORESTS) + 1}
    out = CliRunner().invoke(app, ["duplicates"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "tree: 12 samples have no content hash" in out.output
    assert "samplehub ingest tree" in out.output

    report = repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    assert (report.added, report.hashed) == (0, 12)
    assert repo.catalog.missing_columns("samples") == []
    assert len(repo.catalog.sample_ids("tree")) == 12
    assert find_duplicates(repo.catalog).unhashed == {"copy": len(FORESTS) + 1}
    repo.ingest(SourceSpec(name="copy", uri=str(tmp_path / "copy")))
    assert len(find_duplicates(repo.catalog).images) == len(FORESTS)
    hashes = repo.catalog.read("samples", columns=["content_hash"]).column("content_hash")
    assert pc.count(hashes).as_py() == 12 + len(FORESTS) + 1
    again = repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    assert (again.added, again.hashed) == (0, 0)


def test_cli_duplicates_prints_the_copies_and_labels(repo: Repository) -> None:
    runner = CliRunner()
    helped = runner.invoke(app, ["duplicates", "--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0 and "--dataset" in helped.output and "--limit" in helped.output
    result = runner.invoke(app, ["duplicates", "--limit", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{len(FORESTS)} images held by more than one sample" in out
    assert "copy, tree" in out
    assert "tree/forest/forest00.jpg" in out and "copy/trees/forest00.png" in out
    assert "tree/forest/forest02.jpg" not in out  # --limit 2
    assert "trees, forest" in out
