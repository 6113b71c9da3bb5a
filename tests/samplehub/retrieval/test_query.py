"""The three-step query (samplehub.retrieval.query) on the tiny repository of conftest.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np
import pandas as pd
import pytest
from query_fixture import Fixture

import samplehub.retrieval.query as query_module
from samplehub.errors import (
    DatasetNotFoundError,
    IndexNotTrainedError,
    QueryError,
    SampleHubError,
    SampleNotFoundError,
    UnknownLabelError,
)
from samplehub.repository import Repository
from samplehub.retrieval.context import open_context
from samplehub.retrieval.expansion import match_label
from samplehub.retrieval.query import query_by_image, query_context, run_query
from samplehub.retrieval.types import QuerySpec

RIVER = QuerySpec(labels=("river",), max_label_distance=2.0, similarity_threshold=0.5, k=50)


def ids_of(hits: list) -> set[int]:
    return {h.sample_id for h in hits}


def expected(built: Fixture, mask: np.ndarray) -> set[int]:
    return set(built.frame["sample_id"][mask].tolist())


def test_exact_matches_are_original_and_mapped_labels(built: Fixture) -> None:
    result = run_query(built.repo, RIVER)
    f = built.frame
    assert ids_of(result.exact) == expected(built, np.isin(f["label"], ["River", "Rivers"]))
    assert {h.dataset for h in result.exact} == {"alpha", "beta"}
    beta = next(h for h in result.exact if h.dataset == "beta")
    assert beta.score == 1.0 and beta.labels == ["Rivers"]
    assert beta.reason == "labelled 'Rivers' in beta, which maps to 'river'"
    assert beta.path == ["river", "beta/Rivers"]
    assert result.plan["labels"]["river"]["exact_total"] == 70


def test_dataset_label_query_matches_its_unified_label(built: Fixture) -> None:
    by_dataset_label = run_query(built.repo, dataclasses.replace(RIVER, labels=("beta/Rivers",)))
    assert ids_of(by_dataset_label.exact) == ids_of(run_query(built.repo, RIVER).exact)


def test_supplementary_are_lookalikes_of_associated_labels(built: Fixture) -> None:
    result = run_query(built.repo, RIVER)
    f = built.frame
    supplementary = ids_of(result.supplementary)
    assert not supplementary & ids_of(result.exact)
    assert expected(built, f["lookalike"]) <= supplementary  # forest samples that look like bridges
    assert supplementary <= expected(built, (f["label"] == "Bridge") | f["lookalike"])
    assert all(h.score >= 0.5 for h in result.supplementary)
    scores = [h.score for h in result.supplementary]
    assert scores == sorted(scores, reverse=True)


def test_reasons_carry_label_paths_and_prototypes(built: Fixture) -> None:
    result = run_query(built.repo, RIVER)
    hit = next(h for h in result.supplementary if h.labels == ["Forest"])
    assert hit.path == ["river", "bridge"]
    assert hit.prototype is not None
    assert f"prototype {hit.prototype} of 'bridge'" in hit.reason
    assert "river -[co_occurs]-> bridge (distance 1.250)" in hit.reason
    plan = result.plan["labels"]["river"]
    assert [a["label"] for a in plan["associated"]] == ["water", "bridge"]
    assert plan["missing_prototypes"] == ["water"]  # no sample carries it


def test_prototype_label_cap_keeps_the_nearest(built: Fixture) -> None:
    ctx = open_context(built.repo)
    config = built.repo.config.retrieval
    assert config.max_prototype_labels == 3  # conf/retrieval/ivfpq.yaml
    capped = query_context(ctx, RIVER, dataclasses.replace(config, max_prototype_labels=0))
    assert capped.supplementary == []
    assert capped.plan["labels"]["river"]["capped"] == ["bridge"]  # water has no prototypes
    full = query_context(ctx, RIVER, config)
    assert full.plan["labels"]["river"]["capped"] == [] and full.supplementary


def test_distance_bound_limits_expansion(built: Fixture) -> None:
    result = run_query(built.repo, dataclasses.replace(RIVER, max_label_distance=1.2))
    assert result.supplementary == []
    assert [a["label"] for a in result.plan["labels"]["river"]["associated"]] == ["water"]


def test_no_supplementary_flag(built: Fixture) -> None:
    result = run_query(built.repo, dataclasses.replace(RIVER, include_supplementary=False))
    assert result.supplementary == [] and len(result.exact) == 70
    assert "search" not in result.plan["labels"]["river"]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"bbox": (5.0, 45.0, 15.0, 55.0)}, lambda f: f["dataset"] == "alpha"),
        ({"bbox": (9.0, 49.0, 10.0, 50.0)},
         lambda f: (f["lon"] - 0.005 <= 10.0) & (f["lon"] + 0.005 >= 9.0)
         & (f["lat"] - 0.005 <= 50.0) & (f["lat"] + 0.005 >= 49.0)),
        ({"time_range": (datetime(2021, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC))},
         lambda f: f["dataset"] == "beta"),
        ({"datasets": ("beta",)}, lambda f: f["dataset"] == "beta"),
        ({"sensors": ("aerial",)}, lambda f: f["dataset"] == "alpha"),
        ({"sensors": ("aerial",), "datasets": ("beta",)},
         lambda f: np.zeros(len(f["dataset"]), bool)),
    ],
)
def test_filters_prune_exact_and_supplementary(
    built: Fixture, change: dict, rule: Callable[[pd.DataFrame], Any]
) -> None:
    result = run_query(built.repo, dataclasses.replace(RIVER, **change))
    f = built.frame
    allowed = expected(built, rule(f))
    rivers = np.isin(f["label"], ["River", "Rivers"])
    assert ids_of(result.exact) == expected(built, rule(f) & rivers)
    assert ids_of(result.supplementary) <= allowed
    assert result.plan["candidates"] == len(allowed)


def test_allowed_positions_are_filtered_catalogued_and_not_excluded(built: Fixture) -> None:
    ctx = open_context(built.repo)
    vectors = ctx.ivfpq
    assert vectors is not None
    f = built.frame
    frame_row = {sid: i for i, sid in enumerate(f["sample_id"].tolist())}
    order = np.array([frame_row[sid] for sid in ctx.snapshot.sample_id.tolist()])  # by catalog row
    rows = f["dataset"][order] == "alpha"
    excluded = np.flatnonzero(f["label"][order] == "River")
    allowed = vectors.allowed(rows, excluded)
    ntotal = vectors.ntotal
    mask = np.unpackbits(allowed.bitmap, count=ntotal, bitorder="little").astype(bool)
    expect = set(f["sample_id"][(f["dataset"] == "alpha") & (f["label"] != "River")].tolist())
    assert set(vectors.ids[mask].tolist()) == expect and allowed.count == len(expect)
    everything = vectors.allowed(None, np.zeros(0, np.int64))
    assert everything.count == ntotal == len(f["sample_id"])
    cached = vectors.allowed(None, excluded, key="river")
    assert vectors.allowed(None, excluded, key="river") is cached
    assert cached.count == ntotal - len(excluded)


def test_contexts_belong_to_their_repository(built: Fixture) -> None:
    ctx = open_context(built.repo)
    assert open_context(built.repo) is ctx  # unchanged repository: the same context
    other = Repository(built.repo.config)
    assert open_context(other) is not ctx  # another repository object keeps its own
    assert open_context(other).snapshot.sample_id.tolist() == ctx.snapshot.sample_id.tolist()


def test_vector_search_of_each_index_choice(built: Fixture) -> None:
    ctx = open_context(built.repo)
    assert ctx.vector_search("auto") is ctx.vector_search("exact") is ctx.ivfpq is not None
    with pytest.raises(IndexNotTrainedError, match="load_search"):
        ctx.vector_search("hash")  # the Hamming index is loaded on demand only


def test_memoised_exact_matches_serve_filtered_and_unfiltered_queries(built: Fixture) -> None:
    ctx = open_context(built.repo)
    match = match_label(ctx.graph, "river")
    groups, rows = ctx.exact_matches(match)
    assert ctx.exact_matches(match)[1] is rows  # built once per snapshot
    assert len(rows) == len(np.unique(rows)) == 70  # each matching row once
    assert sum(len(g.rows) for g in groups) == 70
    f = built.frame
    unfiltered = run_query(built.repo, RIVER)
    alpha = run_query(built.repo, dataclasses.replace(RIVER, datasets=("alpha",)))
    rivers = np.isin(f["label"], ["River", "Rivers"])
    assert ids_of(unfiltered.exact) == expected(built, rivers)
    assert ids_of(alpha.exact) == expected(built, rivers & (f["dataset"] == "alpha"))
    assert alpha.plan["labels"]["river"]["exact_total"] == len(ids_of(alpha.exact)) < 70


def test_polygon_filter(built: Fixture) -> None:
    polygon = "POLYGON ((-110 30, -90 30, -90 50, -110 50, -110 30))"
    result = run_query(built.repo, dataclasses.replace(RIVER, polygon_wkt=polygon))
    assert {h.dataset for h in result.hits} == {"beta"}


def test_empty_result_is_not_an_error(built: Fixture) -> None:
    result = run_query(built.repo, dataclasses.replace(RIVER, bbox=(150.0, -40.0, 160.0, -30.0)))
    assert result.hits == [] and result.plan["candidates"] == 0
    assert result.plan["labels"]["river"]["search"]["n_candidates"] == 0


def test_parallel_subqueries_equal_sequential(built: Fixture) -> None:
    spec = dataclasses.replace(RIVER, labels=("river", "bridge", "highway", "forest"))
    ctx = open_context(built.repo)
    config = built.repo.config.retrieval
    parallel = query_context(ctx, spec, config, parallel=True)
    sequential = query_context(ctx, spec, config, parallel=False)
    assert parallel.hits == sequential.hits
    assert parallel.plan["labels"] == sequential.plan["labels"]
    assert {h.query_label for h in parallel.hits} == {"river", "bridge", "highway", "forest"}


def test_parallel_subqueries_search_with_the_callers_openmp_threads(
    built: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenMP's thread count is per thread: the pool's threads take the caller's, not the
    # default team a serving worker's request thread would otherwise multiply
    seen: list[int] = []
    subquery = query_module.subquery

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(faiss.omp_get_max_threads())
        return subquery(*args, **kwargs)

    monkeypatch.setattr(query_module, "subquery", recording)
    spec = dataclasses.replace(RIVER, labels=("river", "bridge"))
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        query_context(open_context(built.repo), spec, built.repo.config.retrieval, parallel=True)
    finally:
        faiss.omp_set_num_threads(before)
    assert seen == [1, 1]


def test_unknown_label_is_a_clear_error(built: Fixture) -> None:
    with pytest.raises(UnknownLabelError, match=r"'rivr' is not in the label graph.*river"):
        run_query(built.repo, QuerySpec(labels=("rivr",)))
    with pytest.raises(KeyError):
        run_query(built.repo, QuerySpec(labels=("no such thing",)))


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (QuerySpec(labels=()), QueryError, "at least one query label"),
        (QuerySpec(labels=("river",), k=0), QueryError, "k must be >= 1"),
        (QuerySpec(labels=("river",), bbox=(10, 0, 0, 10)), QueryError, "bbox"),
        (QuerySpec(labels=("river",), index="hash"), IndexNotTrainedError, "dmch_model"),
        (QuerySpec(labels=("river",), datasets=("gamma",)), DatasetNotFoundError, "gamma"),
        (QuerySpec(labels=("river",), polygon_wkt="POLYGON ((0 0, 1"), QueryError, "polygon"),
    ],
)
def test_bad_queries_raise_samplehub_errors(
    built: Fixture, spec: QuerySpec, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        run_query(built.repo, spec)
    assert isinstance(info.value, SampleHubError)


def test_exact_limit_pages_exact_matches(built: Fixture) -> None:
    result = run_query(built.repo, dataclasses.replace(RIVER, exact_limit=5))
    assert len(result.exact) == 5
    assert result.plan["labels"]["river"]["exact_total"] == 70


def test_planner_choice_is_recorded(built: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    exact = run_query(built.repo, RIVER).plan["labels"]["river"]["search"]
    assert exact["method"] == "exact" and "exact_below=20000" in exact["reason"]
    monkeypatch.setenv("SAMPLEHUB_HOME", str(built.repo.config.home_path))
    ivf_repo = Repository.open(["retrieval.exact_below=0", "retrieval.nprobe=64"])
    ivf = run_query(ivf_repo, RIVER)
    assert ivf.plan["labels"]["river"]["search"]["method"] == "ivfpq"
    assert ivf.plan["labels"]["river"]["search"]["filtered"] is True  # exact matches excluded
    assert ids_of(ivf.supplementary) == ids_of(run_query(built.repo, RIVER).supplementary)


def test_forced_index_choice(built: Fixture) -> None:
    forced = run_query(built.repo, dataclasses.replace(RIVER, index="ivfpq"))
    assert forced.plan["labels"]["river"]["search"]["reason"] == "IVF-PQ search was asked for"


def test_query_by_sample_id_finds_its_own_label(built: Fixture) -> None:
    f = built.frame
    bridge = int(f["sample_id"][f["label"] == "Bridge"][0])
    result = query_by_image(built.repo, sample_id=bridge, k=10)
    assert len(result.similar) == 10 and bridge not in ids_of(result.hits)
    assert ids_of(result.hits) <= expected(built, (f["label"] == "Bridge") | f["lookalike"])
    assert result.hits[0].reason.startswith(f"visually similar to sample {bridge}")


def test_query_by_image_arguments(built: Fixture) -> None:
    with pytest.raises(QueryError, match="exactly one"):
        query_by_image(built.repo)
    with pytest.raises(SampleNotFoundError):
        query_by_image(built.repo, sample_id=12345)
