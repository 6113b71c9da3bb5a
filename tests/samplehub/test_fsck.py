"""``samplehub fsck`` and the ingest's reclaim of rows an interrupted run left in the store."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from samplehub.cli.main import app
from samplehub.config import load_config
from samplehub.fsck import check_repository
from samplehub.ingest import read_entries
from samplehub.repository import Repository
from samplehub.sources import SourceSpec
from samplehub.store import array_key

FIXTURES = Path(__file__).resolve().parents[1] / "data"
runner = CliRunner()


@pytest.fixture
def repo(home: Path) -> Repository:
    repo = Repository(load_config(["executor.batch_size=4"]))
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    return repo


def write_uncommitted(repo: Repository, count: int) -> None:
    """What a run killed between its store write and its catalog commit leaves behind."""
    source = repo.open_source(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    entries = next(iter(source.discover(count)))
    records, _ = read_entries(source, entries, repo.config.executor)
    repo.store.dataset("tree").append(records)


def fsck(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["fsck", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def stored_rows(repo: Repository) -> int:
    return sum(repo.store.dataset("tree").row_counts().values())


def test_a_consistent_repository_passes(repo: Repository) -> None:
    assert check_repository(repo).findings == []
    code, output = fsck()
    assert code == 0 and "consistent" in output


def test_rows_past_the_last_commit_are_reported_then_repaired(repo: Repository) -> None:
    catalogued = len(repo.catalog.sample_ids("tree"))
    write_uncommitted(repo, 3)
    assert stored_rows(repo) == catalogued + 3
    code, output = fsck()
    assert code == 1 and "3 store rows past the last catalog commit" in output
    assert "fsck --repair" in output
    code, output = fsck("--repair")
    assert code == 0 and "repaired" in output
    assert stored_rows(repo) == catalogued
    assert check_repository(repo).clean


def test_the_next_ingest_reclaims_them_and_keeps_rows_aligned(repo: Repository) -> None:
    before = repo.catalog.read("samples", "tree").sort_by("sample_id")
    write_uncommitted(repo, 5)
    report = repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    assert report.reclaimed == 5 and report.added == 0
    assert check_repository(repo).clean
    after = repo.catalog.read("samples", "tree").sort_by("sample_id")
    assert after.column("zarr_index").equals(before.column("zarr_index"))
    row, pixels = repo.image(int(after.column("sample_id")[0].as_py()))
    assert pixels.shape == (3, row["height"], row["width"])


def test_missing_pixels_are_inconsistent_not_reclaimable(repo: Repository) -> None:
    target = repo.store.dataset("tree")
    key, rows = next(iter(target.row_counts().items()))
    target.truncate(key, rows - 2)
    report = check_repository(repo, repair=True)
    (finding,) = report.findings
    assert not finding.reclaimable and not finding.repaired and not report.clean
    assert f"{key}[{rows - 1}]" in finding.what and "re-ingest" in finding.what
    assert fsck()[0] == 1


def test_duplicated_sample_ids_are_reported(repo: Repository) -> None:
    rows = repo.catalog.read("samples", "tree")
    repo.catalog.append("samples", rows.slice(0, 2))
    findings = check_repository(repo).findings
    assert sum("catalogued 2 times" in f.what for f in findings) == 2
    ids = rows.column("sample_id").to_numpy()[:2]
    assert all(any(str(i) in f.what for f in findings) for i in np.asarray(ids))


def test_an_ingest_killed_between_creating_an_image_array_and_its_thumbnails_recovers(
    home: Path,
) -> None:
    repo = Repository(load_config(["executor.batch_size=4"]))
    spec = SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree"))
    source = repo.open_source(spec)
    records, _ = read_entries(source, next(iter(source.discover(1))), repo.config.executor)
    image = records[0].image
    images = repo.store.dataset("tree").group.require_group("images")
    images.create_array(array_key(image), shape=(0, *image.shape), chunks=(1, *image.shape),
                        dtype=image.dtype)
    report = repo.ingest(spec)
    assert report.added == report.found and check_repository(repo).clean
    row, pixels = repo.image(int(repo.catalog.sample_ids("tree")[0]))
    assert pixels.shape == (3, row["height"], row["width"])


def test_a_store_without_any_commit_is_found_and_reclaimed(home: Path) -> None:
    repo = Repository(load_config(["executor.batch_size=4"]))
    source = repo.open_source(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    records, _ = read_entries(source, next(iter(source.discover(3))), repo.config.executor)
    repo.store.dataset("tree").append(records)  # killed before the first catalog commit
    assert repo.store.datasets() == ["tree"]
    (finding,) = check_repository(repo).findings
    assert finding.reclaimable and "3 store rows" in finding.what
    assert check_repository(repo, repair=True).clean
    assert stored_rows(repo) == 0


def leave_spark_leftovers(repo: Repository) -> Path:
    """What a Spark run killed before its driver's commits leaves: part files, index shards.

    Returns:
        The index build's scratch folder.
    """
    from samplehub.feature_store import feature_table
    from samplehub.index.lifecycle import index_path, scratch_folder
    from samplehub.models.feature_model import model_version

    rows = repo.catalog.read("samples", "tree").slice(0, 2)
    repo.catalog.write_file("samples", "tree", rows)
    ids = rows.column("sample_id").to_numpy()
    repo.catalog.write_file("features", "tree",
                            feature_table(ids, "tree", "v", np.ones((2, 8), np.float32)))
    build = Path(scratch_folder(repo, index_path(repo.config, model_version(repo.config))))
    (build / "0123").mkdir(parents=True)
    (build / "0123" / "shard-1.faiss").write_bytes(b"shard")
    return build


def test_a_killed_spark_runs_part_files_and_shards_are_reported_then_repaired(
    repo: Repository,
) -> None:
    samples = repo.catalog.read("samples", "tree").num_rows
    scratch = leave_spark_leftovers(repo)
    findings = check_repository(repo).findings
    assert sorted(f.what.split(" (")[0] for f in findings) == [
        "1 Spark index builds' shards under " + str(scratch) + ", left by interrupted builds",
        "1 features part files no commit references",
        "1 samples part files no commit references",
    ]
    assert all(f.reclaimable for f in findings)
    assert repo.catalog.read("samples", "tree").num_rows == samples  # nobody reads them
    code, output = fsck("--repair")
    assert code == 0 and "repaired" in output
    assert check_repository(repo).findings == [] and not any(scratch.iterdir())
    assert repo.catalog.read("samples", "tree").num_rows == samples


def test_the_next_ingest_drops_its_datasets_uncommitted_part_files(repo: Repository) -> None:
    leave_spark_leftovers(repo)
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    assert repo.catalog.uncommitted_files("samples", "tree") == []
    assert len(repo.catalog.uncommitted_files("features", "tree")) == 1  # a feature run's
