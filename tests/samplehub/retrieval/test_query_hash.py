"""``index="hash"``: the three-step query and query-by-image over the Hamming index of a
DMCH champion trained (real MLflow store, tiny settings) on the query fixture's ``alpha``;
``index="auto"``: the Hamming index measured against IVF-PQ, and searched only where that
measurement favours it."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from query_fixture import Fixture, build

from samplehub.config import load_config
from samplehub.errors import SampleNotFoundError
from samplehub.index.hamming import compute_hash_codes, update_hash_index
from samplehub.models.feature_model import model_version
from samplehub.models.hash_model import train_hash_model
from samplehub.repository import Repository
from samplehub.retrieval.comparison import (
    comparison_path,
    load_comparison,
    refresh_index_comparison,
    save_comparison,
    update_index_comparison,
)
from samplehub.retrieval.planner import IndexComparison, IndexQuality
from samplehub.retrieval.query import query_by_image, run_query
from samplehub.retrieval.types import QuerySpec

HASHING = ["hashing.bits=16", "hashing.epochs=20", "hashing.dmch_dataset=alpha"]
RIVER = QuerySpec(labels=("river",), max_label_distance=2.0, similarity_threshold=0.5, k=50,
                  index="hash")


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fixture, Repository]:
    """The query fixture plus a DMCH champion, codes of both datasets and the index."""
    home = tmp_path_factory.mktemp("hash") / "home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        fixture = build(home, monkeypatch)
        repo = Repository(load_config([f"home={home}", *HASHING]))
        assert train_hash_model(repo, "dmch").promoted
        for dataset in ("alpha", "beta"):
            assert compute_hash_codes(repo, dataset).computed > 0
        assert update_hash_index(repo).kind == "flat"
    return fixture, repo


def label_of(fixture: Fixture) -> dict[int, tuple[str, bool]]:
    f = fixture.frame
    return dict(zip(f["sample_id"].tolist(),
                    zip(f["label"].tolist(), f["lookalike"].tolist(), strict=True), strict=True))


def test_hash_query_finds_the_lookalikes_and_says_so(
    hashed: tuple[Fixture, Repository],
) -> None:
    fixture, repo = hashed
    result = run_query(repo, RIVER)
    plan = result.plan["labels"]["river"]
    assert plan["search"]["method"] == "hash" and "DMCH Eq. 7" in plan["search"]["reason"]
    assert plan["hash_index"]["model"] == "dmch-16-v1"
    assert plan["hash_index"]["bytes_per_sample"] == 16 // 8 + 8 + 16 // 8 + 2 * 16
    labels = label_of(fixture)
    found = collections.Counter(labels[h.sample_id] for h in result.supplementary)
    assert found[("Forest", True)] >= 8  # forest samples whose features look like bridges
    assert found[("Bridge", False)] >= 30
    assert sum(found.values()) - found[("Forest", True)] - found[("Bridge", False)] <= 5
    assert not {h.sample_id for h in result.supplementary} & {h.sample_id for h in result.exact}
    assert all(0.5 <= h.score <= 1.0 for h in result.supplementary)


def test_hash_query_respects_the_filter(hashed: tuple[Fixture, Repository]) -> None:
    _, repo = hashed
    result = run_query(repo, QuerySpec(labels=("highway",), datasets=("alpha",), k=50,
                                       max_label_distance=3.0, index="hash"))
    assert {h.dataset for h in result.hits} <= {"alpha"}
    assert result.plan["labels"]["highway"]["search"]["filtered"] is True


def test_query_by_image_over_the_hamming_index(hashed: tuple[Fixture, Repository]) -> None:
    fixture, repo = hashed
    sample_id = int(fixture.frame["sample_id"][0])  # an alpha River sample
    result = query_by_image(repo, sample_id=sample_id, k=10, index="hash")
    assert result.plan["search"]["method"] == "hash"
    assert sample_id not in {h.sample_id for h in result.hits}
    labels = label_of(fixture)
    assert sum(labels[h.sample_id][0] in ("River", "Rivers") for h in result.hits) >= 8
    with pytest.raises(SampleNotFoundError, match="hash_codes"):
        query_by_image(repo, sample_id=-5, k=3, index="hash")


def test_hash_cli_reports_the_hash_plan(
    hashed: tuple[Fixture, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from samplehub.cli.main import app

    _, repo = hashed
    monkeypatch.setenv("SAMPLEHUB_HOME", str(repo.config.home_path))
    overrides = [arg for o in HASHING for arg in ("--set", o)]
    out = CliRunner().invoke(app, ["query", "--label", "river", "--index", "hash", *overrides])
    assert out.exit_code == 0, out.output
    assert "search: hash" in out.output
    assert Path(repo.config.home_path, "index", "hash", "dmch-16-v1").is_dir()


N_CODES = 180  # alpha 120 + beta 60, in both indexes


@pytest.fixture
def comparison_file(hashed: tuple[Fixture, Repository]) -> Iterator[Path]:
    """Where the comparison is saved; removed after the test (the fixture is shared)."""
    path = comparison_path(hashed[1].config)
    yield path
    path.unlink(missing_ok=True)


def measured(repo: Repository, hash_map: float, hash_p50: float, ntotal: int = N_CODES
             ) -> IndexComparison:
    """A comparison of the served indexes with these Hamming numbers (IVF-PQ: 0.5, 0.5 ms)."""
    return IndexComparison(
        hash=IndexQuality(hash_map, 0.5, hash_p50, hash_p50),
        ivfpq=IndexQuality(0.5, 1.0, 0.5, 0.6),
        k=100, probe=108, seed=0, feature_model=model_version(repo.config), ivfpq_ntotal=ntotal,
        hash_model="dmch-16-v1", hash_ntotal=ntotal, hash_kind="flat",
        measured_at="2026-01-01T00:00:00+00:00",
    )


def test_the_hamming_index_is_measured_on_the_catalogs_labelled_samples(
    hashed: tuple[Fixture, Repository], comparison_file: Path
) -> None:
    _, repo = hashed
    assert run_query(repo, dataclasses.replace(RIVER, index="auto")).plan["index_choice"][
        "reason"].startswith("IVF-PQ: the Hamming index was never measured")
    update = update_index_comparison(repo)
    c = update.comparison
    assert c is not None and update.skipped is None and update.path == comparison_file
    assert load_comparison(repo.config) == c
    assert (c.hash_model, c.hash_kind, c.hash_ntotal, c.ivfpq_ntotal) == (
        "dmch-16-v1", "flat", N_CODES, N_CODES)
    # DMCH trained on 24 of each alpha class (its 60 % database split): 3 x 16 + 60 probed
    assert (c.probe, c.k) == (108, 100)
    for quality in (c.hash, c.ivfpq):
        assert 0.0 < quality.map_at_k <= 1.0 and 0.0 < quality.recall_at_k <= 1.0
        assert 0.0 < quality.p50_ms <= quality.p99_ms
    assert c.ivfpq.recall_at_k >= 0.9  # nprobe covers this tiny index; re-rank is exact
    result = run_query(repo, dataclasses.replace(RIVER, index="auto"))
    choice = result.plan["index_choice"]
    assert choice["comparison"] == c.as_dict()  # the evidence travels with the plan
    assert choice["index"] == ("hash" if c.hash_wins else "ivfpq")


def test_auto_searches_ivfpq_where_hamming_measured_worse(
    hashed: tuple[Fixture, Repository], comparison_file: Path
) -> None:
    _, repo = hashed
    save_comparison(repo.config, measured(repo, hash_map=0.3, hash_p50=0.1))  # faster, worse
    result = run_query(repo, dataclasses.replace(RIVER, index="auto"))
    choice = result.plan["index_choice"]
    assert choice["index"] == "ivfpq" and "not better on both" in choice["reason"]
    assert "Hamming 0.300 vs IVF-PQ 0.500" in choice["reason"]
    assert choice["comparison"]["hash"]["p50_ms"] == 0.1
    search = result.plan["labels"]["river"]["search"]
    assert search["method"] == "exact"  # IVF-PQ's planner: 180 candidates < exact_below
    assert "hash_index" not in result.plan["labels"]["river"]
    image = query_by_image(repo, sample_id=1000, k=5, index="auto")
    assert image.plan["search"]["method"] == "exact"
    assert image.plan["index_choice"]["index"] == "ivfpq"


def test_auto_searches_hamming_where_it_measured_better_on_both(
    hashed: tuple[Fixture, Repository], comparison_file: Path
) -> None:
    _, repo = hashed
    save_comparison(repo.config, measured(repo, hash_map=0.8, hash_p50=0.1))
    result = run_query(repo, dataclasses.replace(RIVER, index="auto"))
    choice = result.plan["index_choice"]
    assert choice["index"] == "hash" and choice["reason"].startswith("Hamming: better on both")
    assert "Hamming 0.800 vs IVF-PQ 0.500, p50 0.100 vs 0.500 ms" in choice["reason"]
    plan = result.plan["labels"]["river"]
    assert plan["search"]["method"] == "hash" and "measured better" in plan["search"]["reason"]
    assert plan["hash_index"]["model"] == "dmch-16-v1"
    asked = run_query(repo, RIVER)  # index="hash": the same search
    assert [h.sample_id for h in result.hits] == [h.sample_id for h in asked.hits]
    assert "index_choice" not in asked.plan
    image = query_by_image(repo, sample_id=1000, k=5, index="auto")
    assert image.plan["search"]["method"] == "hash"
    assert image.plan["index_choice"]["index"] == "hash"


def test_auto_ignores_a_win_measured_before_the_catalog_changed(
    hashed: tuple[Fixture, Repository], comparison_file: Path
) -> None:
    _, repo = hashed
    save_comparison(repo.config, measured(repo, hash_map=0.8, hash_p50=0.1, ntotal=150))
    result = run_query(repo, dataclasses.replace(RIVER, index="auto"))
    choice = result.plan["index_choice"]
    assert choice["index"] == "ivfpq" and "measured" in choice["reason"]
    assert f"with 150 vectors, served {model_version(repo.config)} with {N_CODES}" in choice[
        "reason"]
    assert result.plan["labels"]["river"]["search"]["method"] == "exact"
    refreshed = refresh_index_comparison(repo)  # what the ivfpq_index asset runs
    assert refreshed.comparison is not None and load_comparison(repo.config) == refreshed.comparison
    assert refreshed.comparison.ivfpq_ntotal == refreshed.comparison.hash_ntotal == N_CODES


def test_refresh_measures_nothing_before_the_first_measurement(
    hashed: tuple[Fixture, Repository], comparison_file: Path
) -> None:
    _, repo = hashed
    update = refresh_index_comparison(repo)
    assert update.comparison is None and "never measured" in str(update.skipped)
    assert not comparison_file.exists()
