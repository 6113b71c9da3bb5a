"""``index="hash"``: the three-step query and query-by-image over the Hamming index of a
DMCH champion trained (real MLflow store, tiny settings) on the query fixture's ``alpha``."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from query_fixture import Fixture, build

from samplehub.config import load_config
from samplehub.errors import SampleNotFoundError
from samplehub.index.hamming import compute_hash_codes, update_hash_index
from samplehub.models.hash_model import train_hash_model
from samplehub.repository import Repository
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
