"""The query planner (samplehub.retrieval.planner) and the IVF-PQ search behind the
query's search interface (samplehub.retrieval.search) on seeded synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from samplehub.config import RetrievalConfig
from samplehub.errors import QueryError, SampleNotFoundError
from samplehub.index.ivfpq import build_ivfpq_index, exact_search, recall_at_k
from samplehub.retrieval.expansion import PrototypeTarget
from samplehub.retrieval.planner import (
    AllowedPositions,
    IndexComparison,
    IndexQuality,
    LabelPlan,
    SearchPlan,
    ServedIndex,
    choose_index,
    plan_hash_search,
    plan_search,
    searched_index,
)
from samplehub.retrieval.search import IvfpqSearch, PositionMap, VectorSearch

NB, D = 4000, 32
IDS = np.arange(NB, dtype=np.int64) * 3 + 11


def settings(exact_below: int = 1000, nprobe: int = 8, k_factor: int = 4) -> RetrievalConfig:
    """Retrieval settings of these tests (no scan cap)."""
    return RetrievalConfig(exact_below=exact_below, nprobe=nprobe, refine_factor=k_factor,
                           max_codes=0)


@pytest.fixture(scope="module")
def vectors() -> IvfpqSearch:
    """The index over a catalog whose row r holds sample ``IDS[r]``."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, D))
    xb = centres[rng.integers(0, 20, NB)] + 0.3 * rng.standard_normal((NB, D))
    xb = (xb / np.linalg.norm(xb, axis=1, keepdims=True)).astype(np.float32)
    return IvfpqSearch.of(build_ivfpq_index(xb, IDS, nlist=32, m=8, nbits=8), IDS)


def test_wraps_stored_vectors_without_copy(vectors: IvfpqSearch) -> None:
    assert vectors.ntotal == NB and vectors.xb is not None
    assert vectors.xb.shape == (NB, D) and not vectors.xb.flags.owndata
    np.testing.assert_array_equal(np.sort(vectors.ids), IDS)
    np.testing.assert_array_equal(vectors.ids, vectors.index.ids)


def test_ivfpq_search_answers_the_search_interface(vectors: IvfpqSearch) -> None:
    search: VectorSearch = vectors
    allowed = search.allowed(None, np.zeros(0, np.int64))
    plan = search.plan("exact", allowed.count, 5, settings())
    position = search.position_of(7, int(IDS[7]))
    scores, rows = search.search_stored(plan, position, 5, allowed)
    assert rows[0, 0] == 7 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)  # itself, cosine 1
    assert (np.diff(scores[0]) <= 1e-6).all()
    assert search.describe() == {}
    with pytest.raises(SampleNotFoundError, match="ivfpq_index"):
        search.position_of(-1, 123)


def test_position_map_links_rows_and_positions() -> None:
    ids = np.array([50, 10, 40, 20])  # positions hold these samples (not sorted)
    sample_id = np.array([10, 30, 40, 50])  # catalog rows; 30 is not indexed, 20 left
    positions = PositionMap.of(ids, sample_id)
    np.testing.assert_array_equal(positions.row_position, [1, -1, 2, 0])
    np.testing.assert_array_equal(positions.position_row, [3, 0, 2, -1])
    allowed = positions.allowed(np.array([True, True, True, False]), np.array([2]))
    np.testing.assert_array_equal(allowed.positions(4), [1])  # row 0 only: 3 filtered, 2 out
    np.testing.assert_array_equal(positions.rows(np.array([[3, -1, 0]])), [[-1, -1, 3]])
    empty = PositionMap.of(np.zeros(0, np.int64), sample_id)
    assert (empty.row_position == -1).all() and empty.allowed(None, np.zeros(0, int)).count == 0


@pytest.mark.parametrize(
    ("choice", "n", "method", "reason"),
    [
        ("auto", 100, "exact", "100 candidates < exact_below=1000"),
        ("auto", 2000, "ivfpq", "2000 candidates >= exact_below=1000"),
        ("exact", NB, "exact", "exact search was asked for"),
        ("ivfpq", 10, "ivfpq", "IVF-PQ search was asked for"),
    ],
)
def test_plan_choice_and_reason(
    vectors: IvfpqSearch, choice: str, n: int, method: str, reason: str
) -> None:
    plan = vectors.plan(choice, n, 10, settings())  # type: ignore[arg-type]
    assert plan.method == method and reason in plan.reason
    assert plan.filtered == (n < NB)
    assert plan.as_dict()["method"] == method


def test_ivfpq_plan_takes_its_settings_from_the_config() -> None:
    config = RetrievalConfig()
    plan = plan_search("ivfpq", 10, NB, True, config)
    assert (plan.nprobe, plan.k_factor, plan.max_codes) == (
        config.nprobe, config.refine_factor, config.max_codes)
    unrefined = plan_search("auto", 10, NB, False, config)
    assert unrefined.method == "ivfpq" and "refine=False" in unrefined.reason
    with pytest.raises(QueryError, match="refine=False"):
        plan_search("exact", 10, NB, False, config)


def test_label_plan_reports_step_3_only_when_it_ran() -> None:
    plan = LabelPlan("river", "river", ["beta/Rivers"], 70)
    assert plan.as_dict() == {"resolved": "river", "unified": "river",
                              "equivalents": ["beta/Rivers"], "exact_total": 70}
    plan.associated = [PrototypeTarget("bridge", 1.23456, ("river", "bridge"), ("co_occurs",))]
    plan.similarity_threshold = 0.5
    plan.skipped = "no IVF-PQ index yet (ivfpq_index asset)"
    out = plan.as_dict()
    assert list(out) == ["resolved", "unified", "equivalents", "exact_total", "associated",
                         "missing_prototypes", "similarity_threshold", "capped", "search"]
    assert out["associated"] == [{"label": "bridge", "distance": 1.2346,
                                  "path": ["river", "bridge"]}]
    assert out["search"] == {"method": "none", "reason": plan.skipped}
    plan.skipped, plan.search = None, SearchPlan("hash", 3, True, "asked")
    plan.index = {"hash_index": {"model": "dmch-64-v3"}}
    out = plan.as_dict()
    assert out["search"]["method"] == "hash" and list(out)[-1] == "hash_index"  # type: ignore[index]


def test_hash_is_planned_over_the_hamming_index(vectors: IvfpqSearch) -> None:
    with pytest.raises(QueryError, match="plan_hash_search"):
        vectors.plan("hash", 10, 10, settings())
    plan = plan_hash_search(10, 100, "ivf", "dmch-64-v3", k=20, top_m=100, nprobe=16)
    assert (plan.method, plan.filtered, plan.k_factor) == ("hash", True, 5)
    assert "dmch-64-v3" in plan.reason and "Eq. 7" in plan.reason
    assert "exact scan of the filtered codes" in plan.reason
    unfiltered = plan_hash_search(100, 100, "flat", "dmch-64-v3", k=200, top_m=100, nprobe=16)
    assert (unfiltered.filtered, unfiltered.nprobe, unfiltered.k_factor) == (False, 0, 1)


def allowed(positions: np.ndarray) -> AllowedPositions:
    """``positions`` packed for the search, as the query context builds them."""
    mask = np.zeros(NB, dtype=bool)
    mask[positions] = True
    return AllowedPositions.of(mask)


def test_exact_plan_is_brute_force_over_candidates(vectors: IvfpqSearch) -> None:
    rng = np.random.default_rng(1)
    positions = np.sort(rng.choice(NB, 300, replace=False))
    xq = vectors.xb[:5].copy()
    plan = vectors.plan("auto", len(positions), 10, settings())
    D, I = vectors.search_positions(plan, xq, 10, allowed(positions))
    D_ref, I_ref = exact_search(vectors.xb[positions], xq, 10, "ip", positions)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5)


def test_filtered_ivfpq_returns_only_candidates(vectors: IvfpqSearch) -> None:
    positions = np.arange(0, NB, 2)
    plan = vectors.plan("ivfpq", len(positions), 20, settings(nprobe=32))
    xq = vectors.xb[:20].copy()
    _, I = vectors.search_positions(plan, xq, 20, allowed(positions))
    assert np.isin(I[I >= 0], positions).all()
    _, I_ref = exact_search(vectors.xb[positions], xq, 20, "ip", positions)
    assert recall_at_k(I, I_ref) >= 0.95  # nprobe = nlist: only PQ + re-rank approximate


def test_unfiltered_ivfpq_matches_exact(vectors: IvfpqSearch) -> None:
    everything = np.arange(NB)
    plan = vectors.plan("auto", NB, 10, settings(exact_below=100, nprobe=16, k_factor=8))
    assert plan.method == "ivfpq" and not plan.filtered
    xq = vectors.xb[100:150].copy()
    _, I = vectors.search_positions(plan, xq, 10, None)
    _, I_ref = exact_search(vectors.xb, xq, 10, "ip", everything)
    assert recall_at_k(I, I_ref) >= 0.9


def test_no_candidates_gives_empty_results(vectors: IvfpqSearch) -> None:
    plan = vectors.plan("auto", 0, 5, settings())
    D, I = vectors.search_positions(plan, vectors.xb[:2].copy(), 5, allowed(np.zeros(0, int)))
    assert (I == -1).all() and D.shape == (2, 5)
    scores, rows = vectors.search(plan, vectors.xb[:2].copy(), 5, allowed(np.zeros(0, int)))
    assert (rows == -1).all() and scores.shape == (2, 5)


@pytest.mark.parametrize("method", ["ivfpq", "exact"])
def test_batched_prototype_search_equals_one_search_per_prototype(
    vectors: IvfpqSearch, method: str
) -> None:
    """Step 3 searches all prototypes in one call (nq = P); each row is that query's own search."""
    rng = np.random.default_rng(2)
    positions = np.sort(rng.choice(NB, NB - 500, replace=False))  # exact matches left out
    plan = vectors.plan(method, len(positions), 30, settings())  # type: ignore[arg-type]
    xq = vectors.xb[rng.choice(NB, 12, replace=False)] + 0.05 * rng.standard_normal((12, D))
    xq = (xq / np.linalg.norm(xq, axis=1, keepdims=True)).astype(np.float32)
    D_batch, I_batch = vectors.search_positions(plan, xq, 30, allowed(positions))
    for i in range(len(xq)):
        D_one, I_one = vectors.search_positions(plan, xq[i : i + 1], 30, allowed(positions))
        np.testing.assert_array_equal(I_batch[i], I_one[0])
        np.testing.assert_allclose(D_batch[i], D_one[0], rtol=1e-5)


IVFPQ = ServedIndex("efficientnet_lite0-v1", 5000)
HAMMING = ServedIndex("dmch-64-v3", 5000)


def comparison(hash_map: float, hash_p50: float, ivfpq_ntotal: int = 5000) -> IndexComparison:
    """A measurement of ``IVFPQ`` (mAP 0.6, p50 0.5 ms) against ``HAMMING`` (the arguments)."""
    return IndexComparison(
        hash=IndexQuality(hash_map, 0.3, hash_p50, 2 * hash_p50),
        ivfpq=IndexQuality(0.6, 0.97, 0.5, 0.9),
        k=100, probe=200, seed=0, feature_model=IVFPQ.model, ivfpq_ntotal=ivfpq_ntotal,
        hash_model=HAMMING.model, hash_ntotal=HAMMING.ntotal, hash_kind="flat",
        measured_at="2026-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("hash_map", "hash_p50", "why"),
    [(0.4, 0.2, "faster but worse"), (0.7, 0.8, "better but slower"), (0.6, 0.2, "a tie")],
)
def test_auto_keeps_ivfpq_where_hamming_is_not_better_on_both(
    hash_map: float, hash_p50: float, why: str
) -> None:
    measured = comparison(hash_map, hash_p50)
    decision = choose_index(measured, IVFPQ, HAMMING)
    assert decision.index == "ivfpq", why
    assert "not better on both" in decision.reason
    assert f"Hamming {hash_map:.3f} vs IVF-PQ 0.600" in decision.reason
    assert f"p50 {hash_p50:.3f} vs 0.500 ms" in decision.reason
    assert decision.as_dict()["comparison"] == measured.as_dict()  # the evidence, in the plan
    assert searched_index("auto", decision) == "auto"


def test_auto_picks_hamming_where_it_measured_better_on_both() -> None:
    measured = comparison(0.7, 0.2)
    decision = choose_index(measured, IVFPQ, HAMMING)
    assert decision.index == "hash" and measured.hash_wins
    assert decision.reason.startswith("Hamming: better on both")
    assert "Hamming 0.700 vs IVF-PQ 0.600" in decision.reason
    assert decision.as_dict()["comparison"]["hash"]["map_at_k"] == 0.7
    assert searched_index("auto", decision) == "hash"
    assert searched_index("ivfpq", decision) == "ivfpq"  # only auto follows the measurement
    assert IndexComparison.from_dict(measured.as_dict()) == measured


def test_auto_ignores_a_win_measured_on_other_indexes() -> None:
    grown = choose_index(comparison(0.7, 0.2, ivfpq_ntotal=4000), IVFPQ, HAMMING)
    assert grown.index == "ivfpq"
    assert "IVF-PQ measured efficientnet_lite0-v1 with 4000 vectors, served" in grown.reason
    retrained = choose_index(comparison(0.7, 0.2), IVFPQ, ServedIndex("dmch-64-v4", 5000))
    assert retrained.index == "ivfpq" and "served dmch-64-v4" in retrained.reason
    behind = comparison(0.7, 0.2, ivfpq_ntotal=6000)  # measured so, but codes lag
    lagging = choose_index(behind, ServedIndex(IVFPQ.model, 6000), HAMMING)
    assert lagging.index == "ivfpq" and "holds 5000 codes, IVF-PQ 6000 vectors" in lagging.reason
    unloadable = choose_index(comparison(0.7, 0.2), IVFPQ, None)
    assert unloadable.index == "ivfpq" and "not loadable" in unloadable.reason
    never = choose_index(None, IVFPQ, HAMMING)
    assert never.index == "ivfpq" and "never measured" in never.reason
    assert never.as_dict()["comparison"] is None
