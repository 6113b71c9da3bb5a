"""Ingestion end to end on local disk: idempotent re-runs, quarantine without loss."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from samplehub.config import load_config
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def repo(home: Path) -> Repository:
    return Repository(load_config(["executor.batch_size=5", "executor.workers=2"]))


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_folder_tree_ingest_is_idempotent(repo: Repository) -> None:
    spec = SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree"))
    first = repo.ingest(spec)
    files = [p for p in (FIXTURES / "folder_tree").rglob("*.jpg")]
    assert first.added == first.found == len(files) and not first.quarantined
    second = repo.ingest(spec)
    assert second.added == 0 and second.skipped == len(files)
    assert len(repo.catalog.sample_ids("tree")) == len(files)
    info = repo.catalog.dataset("tree")
    assert info.n_samples == len(files) and info.version == 1
    row, pixels = repo.image(int(repo.catalog.sample_ids("tree")[0]))
    assert pixels.shape == (3, row["height"], row["width"])


def test_corrupt_copies_are_quarantined_and_nothing_else_is_lost(
    repo: Repository, tmp_path: Path
) -> None:
    tree = copy_tree(FIXTURES / "folder_tree", tmp_path / "tree")
    images = sorted(tree.rglob("*.jpg"))
    truncated, empty, not_image = images[0], images[3], images[5]
    good_bytes = truncated.read_bytes()
    truncated.write_bytes(good_bytes[: len(good_bytes) // 3])
    empty.write_bytes(b"")
    not_image.write_text("this is not a JPEG")
    spec = SourceSpec(name="broken", uri=str(tree), kind="folder_tree")

    report = repo.ingest(spec)
    bad = {q.entry.relpath: q.reason for q in report.quarantined}
    assert set(bad) == {str(p.relative_to(tree)) for p in (truncated, empty, not_image)}
    assert all(str(tree) in reason for reason in bad.values()), bad
    assert report.added == len(images) - 3
    stored = repo.catalog.samples("broken")
    assert set(stored["relpath"]) == {str(p.relative_to(tree)) for p in images} - set(bad)
    assert len(repo.catalog.quarantine("broken")) == 3
    for sample_id in stored["sample_id"]:
        row, pixels = repo.image(int(sample_id))
        assert pixels.shape[1:] == (row["height"], row["width"])

    truncated.write_bytes(good_bytes)
    again = repo.ingest(spec)
    assert again.added == 1 and len(again.quarantined) == 2
    assert len(repo.catalog.quarantine("broken")) == 2
    assert len(repo.catalog.sample_ids("broken")) == len(images) - 2
    ids = repo.catalog.sample_ids("broken")
    assert len(np.unique(ids)) == len(ids)


def test_a_dataset_none_of_whose_files_decode_fails_and_keeps_its_quarantine(
    repo: Repository, tmp_path: Path
) -> None:
    from samplehub.errors import InvalidSampleError

    rubble = tmp_path / "rubble" / "debris"
    rubble.mkdir(parents=True)
    for i in range(3):
        (rubble / f"chip{i}.jpg").write_text("not a JPEG")
    with pytest.raises(InvalidSampleError, match=r"'rubble': none of the 3 files.*chip0.jpg"):
        repo.ingest(SourceSpec(name="rubble", uri=str(rubble.parent)))
    assert len(repo.catalog.quarantine("rubble")) == 3
    assert repo.catalog.dataset("rubble").n_quarantined == 3


def test_missing_source_names_the_path(repo: Repository, tmp_path: Path) -> None:
    from samplehub.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError, match="nowhere"):
        repo.ingest(SourceSpec(name="x", uri=str(tmp_path / "nowhere")))


@pytest.mark.slow
def test_eurosat_ingests_27000_in_10_labels_and_reingest_adds_nothing(
    home: Path, shared_data: Path
) -> None:
    repo = Repository(load_config())
    spec = repo.sources()["eurosat"]
    report = repo.ingest(spec)
    assert (report.total, report.labels, len(report.quarantined)) == (27000, 10, 0)
    counts = repo.catalog.dataset("eurosat").label_tree
    assert '"HerbaceousVegetation", "parent": null, "count": 2999' in counts
    assert '"Highway", "parent": null, "count": 2501' in counts
    assert repo.ingest(spec).added == 0
    assert len(repo.catalog.sample_ids("eurosat")) == 27000


@pytest.mark.parametrize(
    ("name", "samples", "labels", "bands"),
    [
        ("ucmerced", 2100, 21, 3),
        ("ucmerced_multilabel", 2100, 17, 3),
        ("bigearthnet_s2", 6, None, 12),
        ("rgbn", 3, 0, 4),
    ],
)
def test_real_sources_ingest_locally(
    home: Path, shared_data: Path, name: str, samples: int, labels: int | None, bands: int
) -> None:
    repo = Repository(load_config())
    report = repo.ingest(repo.sources()[name])
    assert report.total == samples and not report.quarantined
    if labels is not None:
        assert report.labels == labels
    frame = repo.catalog.samples(name, columns=["bands", "georeferenced", "minx", "maxx"])
    assert {len(b) for b in frame["bands"]} == {bands}
    if name in ("bigearthnet_s2", "rgbn"):
        assert frame["georeferenced"].all()
        assert (
            (frame["minx"] >= -180) & (frame["maxx"] <= 180) & (frame["minx"] < frame["maxx"])
        ).all()
