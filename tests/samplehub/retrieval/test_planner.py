"""The query planner (samplehub.retrieval.planner) on seeded synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from samplehub.errors import QueryError
from samplehub.index.ivfpq import build_ivfpq_index, exact_search, recall_at_k
from samplehub.retrieval.planner import (
    AllowedPositions,
    IndexedVectors,
    plan_hash_search,
    plan_search,
    search_positions,
)

NB, D = 4000, 32


@pytest.fixture(scope="module")
def vectors() -> IndexedVectors:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, D))
    xb = centres[rng.integers(0, 20, NB)] + 0.3 * rng.standard_normal((NB, D))
    xb = (xb / np.linalg.norm(xb, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(NB, dtype=np.int64) * 3 + 11
    return IndexedVectors.of(build_ivfpq_index(xb, ids, nlist=32, m=8, nbits=8))


def test_wraps_stored_vectors_without_copy(vectors: IndexedVectors) -> None:
    assert vectors.ntotal == NB and vectors.xb is not None
    assert vectors.xb.shape == (NB, D) and not vectors.xb.flags.owndata
    np.testing.assert_array_equal(np.sort(vectors.ids), np.arange(NB) * 3 + 11)


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
    vectors: IndexedVectors, choice: str, n: int, method: str, reason: str
) -> None:
    plan = plan_search(choice, n, vectors, exact_below=1000, nprobe=8, k_factor=4)  # type: ignore[arg-type]
    assert plan.method == method and reason in plan.reason
    assert plan.filtered == (n < NB)
    assert plan.as_dict()["method"] == method


def test_hash_is_planned_over_the_hamming_index(vectors: IndexedVectors) -> None:
    with pytest.raises(QueryError, match="plan_hash_search"):
        plan_search("hash", 10, vectors, 1000, 8, 4)
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


def test_exact_plan_is_brute_force_over_candidates(vectors: IndexedVectors) -> None:
    rng = np.random.default_rng(1)
    positions = np.sort(rng.choice(NB, 300, replace=False))
    xq = vectors.xb[:5].copy()
    plan = plan_search("auto", len(positions), vectors, 1000, 8, 4)
    D, I = search_positions(plan, vectors, xq, 10, allowed(positions))
    D_ref, I_ref = exact_search(vectors.xb[positions], xq, 10, "ip", positions)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5)


def test_filtered_ivfpq_returns_only_candidates(vectors: IndexedVectors) -> None:
    positions = np.arange(0, NB, 2)
    plan = plan_search("ivfpq", len(positions), vectors, 1000, nprobe=32, k_factor=4)
    xq = vectors.xb[:20].copy()
    _, I = search_positions(plan, vectors, xq, 20, allowed(positions))
    assert np.isin(I[I >= 0], positions).all()
    _, I_ref = exact_search(vectors.xb[positions], xq, 20, "ip", positions)
    assert recall_at_k(I, I_ref) >= 0.95  # nprobe = nlist: only PQ + re-rank approximate


def test_unfiltered_ivfpq_matches_exact(vectors: IndexedVectors) -> None:
    everything = np.arange(NB)
    plan = plan_search("auto", NB, vectors, exact_below=100, nprobe=16, k_factor=8)
    assert plan.method == "ivfpq" and not plan.filtered
    xq = vectors.xb[100:150].copy()
    _, I = search_positions(plan, vectors, xq, 10, None)
    _, I_ref = exact_search(vectors.xb, xq, 10, "ip", everything)
    assert recall_at_k(I, I_ref) >= 0.9


def test_no_candidates_gives_empty_results(vectors: IndexedVectors) -> None:
    plan = plan_search("auto", 0, vectors, 1000, 8, 4)
    D, I = search_positions(plan, vectors, vectors.xb[:2].copy(), 5, allowed(np.zeros(0, int)))
    assert (I == -1).all() and D.shape == (2, 5)


@pytest.mark.parametrize("method", ["ivfpq", "exact"])
def test_batched_prototype_search_equals_one_search_per_prototype(
    vectors: IndexedVectors, method: str
) -> None:
    """Step 3 searches all prototypes in one call (nq = P); each row is that query's own search."""
    rng = np.random.default_rng(2)
    positions = np.sort(rng.choice(NB, NB - 500, replace=False))  # exact matches left out
    plan = plan_search(method, len(positions), vectors, 1000, nprobe=8, k_factor=4)  # type: ignore[arg-type]
    xq = vectors.xb[rng.choice(NB, 12, replace=False)] + 0.05 * rng.standard_normal((12, D))
    xq = (xq / np.linalg.norm(xq, axis=1, keepdims=True)).astype(np.float32)
    D_batch, I_batch = search_positions(plan, vectors, xq, 30, allowed(positions))
    for i in range(len(xq)):
        D_one, I_one = search_positions(plan, vectors, xq[i : i + 1], 30, allowed(positions))
        np.testing.assert_array_equal(I_batch[i], I_one[0])
        np.testing.assert_allclose(D_batch[i], D_one[0], rtol=1e-5)
