"""IVF-PQ index against brute force on seeded synthetic features (faiss contrib style)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from samplehub.errors import IndexNotTrainedError
from samplehub.index.ivfpq import (
    IvfpqIndex,
    IvfpqParams,
    add_to_index,
    build_ivfpq_index,
    exact_search,
    indexed_ids,
    ivf_search_parameters,
    load_index,
    measure_recall,
    needs_retrain,
    recall_at_k,
    reserve_store,
    retrain_index,
    save_index,
    search,
    stored_vectors,
    suggest_nlist,
    train_ivfpq_index,
)

D_DIM, NB, NQ, K = 32, 4_000, 100, 10
NLIST, M, NBITS = 32, 8, 6
RECALL_BAR = 0.95  # recall@10 with exact re-ranking (k_factor 8), nprobe=8 of 32 cells


def clustered(n: int, seed: int, n_clusters: int = 50) -> np.ndarray:
    """Unit vectors around seeded cluster centres: structure like real image features."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(size=(n_clusters, D_DIM))
    x = centres[rng.integers(0, n_clusters, n)] + 1.0 * rng.normal(size=(n, D_DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


# The ``data`` fixture: database vectors xb (NB, d), their ids (NB,), queries xq (NQ, d).
Data = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def data() -> Data:
    xb = clustered(NB, seed=0)
    ids = np.random.default_rng(7).choice(2**62, NB, replace=False).astype(np.int64)
    xq = clustered(NQ, seed=1)
    return xb, ids, xq


@pytest.fixture(scope="module")
def built(data: Data) -> IvfpqIndex:
    xb, ids, _ = data
    return build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, refine=True)


def test_exact_search_matches_numpy(data: Data) -> None:
    xb, ids, xq = data
    D, I = exact_search(xb, xq, K, ids=ids)
    scores = xq @ xb.T
    top = np.argsort(-scores, axis=1)[:, :K]
    np.testing.assert_array_equal(I, ids[top])
    np.testing.assert_allclose(D, np.take_along_axis(scores, top, axis=1), rtol=1e-5)


def test_refined_ivfpq_recall_against_brute_force(data: Data, built: IvfpqIndex) -> None:
    xb, ids, xq = data
    _, I_exact = exact_search(xb, xq, K, ids=ids)
    _, I = search(built, xq, K, nprobe=8, k_factor=8)
    assert recall_at_k(I, I_exact) >= RECALL_BAR
    assert set(np.unique(I)) <= set(ids)


def test_refine_and_nprobe_matter(data: Data, built: IvfpqIndex) -> None:
    xb, ids, xq = data
    _, I_exact = exact_search(xb, xq, K, ids=ids)
    pq_only = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, refine=False)
    recall_pq = recall_at_k(search(pq_only, xq, K, nprobe=8, k_factor=4)[1], I_exact)
    recall_refined = recall_at_k(search(built, xq, K, nprobe=8, k_factor=8)[1], I_exact)
    recall_one_cell = recall_at_k(search(built, xq, K, nprobe=1, k_factor=8)[1], I_exact)
    assert recall_refined > recall_pq
    assert recall_refined > recall_one_cell


def test_search_returns_ip_scores_of_exact_vectors(data: Data, built: IvfpqIndex) -> None:
    xb, ids, _ = data
    D, I = search(built, xb[:5], 1, nprobe=8, k_factor=4)
    np.testing.assert_array_equal(I[:, 0], ids[:5])  # every vector finds itself
    np.testing.assert_allclose(D[:, 0], 1.0, atol=1e-5)


def test_index_exposes_its_parts(data: Data, built: IvfpqIndex) -> None:
    xb, ids, _ = data
    assert sorted(built.ids.tolist()) == sorted(ids.tolist()) and built.ids.dtype == np.int64
    assert isinstance(built.ivf, faiss.IndexIVFPQ) and built.ivf.nlist == NLIST
    assert isinstance(built.inner, faiss.IndexRefineFlat)
    store = built.store
    assert isinstance(store, faiss.IndexFlat) and store.ntotal == built.ntotal
    order = {int(i): r for r, i in enumerate(ids)}
    np.testing.assert_allclose(store.reconstruct(0), xb[order[int(built.ids[0])]])
    pq_only = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, refine=False)
    assert pq_only.store is None and isinstance(pq_only.inner, faiss.IndexIVFPQ)


@pytest.mark.parametrize(("store", "bytes_per_dim", "atol"), [("fp16", 2, 1e-3), ("sq8", 1, 2e-2)])
def test_compact_stores_keep_recall_in_less_memory(
    data: Data, built: IvfpqIndex, store: str, bytes_per_dim: int, atol: float
) -> None:
    xb, ids, xq = data
    compact = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, store=store)  # type: ignore[arg-type]
    assert isinstance(compact.store, faiss.IndexScalarQuantizer)
    assert compact.store.code_size == bytes_per_dim * D_DIM
    stored, stored_ids = stored_vectors(compact)
    order = {int(i): r for r, i in enumerate(ids)}
    np.testing.assert_allclose(stored, xb[[order[int(i)] for i in stored_ids]], atol=atol)
    _, I_exact = exact_search(xb, xq, K, ids=ids)
    recall = recall_at_k(search(compact, xq, K, nprobe=8, k_factor=8)[1], I_exact)
    full = recall_at_k(search(built, xq, K, nprobe=8, k_factor=8)[1], I_exact)
    assert recall >= full - (0.01 if store == "fp16" else 0.05)


def test_chunked_adds_equal_one_build(data: Data) -> None:
    xb, ids, xq = data
    whole = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, store="fp16", xt=xb)
    params = whole.params
    chunked = train_ivfpq_index(xb, params)
    for start in range(0, NB, 1000):
        add_to_index(chunked, xb[start : start + 1000], ids[start : start + 1000])
    _, I1 = search(whole, xq, K, nprobe=8, k_factor=8)
    _, I2 = search(chunked, xq, K, nprobe=8, k_factor=8)
    np.testing.assert_array_equal(I1, I2)
    with pytest.raises(ValueError, match="store must be one of"):
        train_ivfpq_index(xb, IvfpqParams(d=D_DIM, nlist=NLIST, m=M, nbits=NBITS,
                                          store="bf16"))  # type: ignore[arg-type]


def test_a_reserved_store_fills_in_place(data: Data) -> None:
    xb, ids, xq = data
    index = train_ivfpq_index(xb, IvfpqParams(d=D_DIM, nlist=NLIST, m=M, nbits=NBITS,
                                              store="fp16"))
    reserve_store(index, NB)
    assert index.store.ntotal == 0 and index.store.codes.size() == 0
    add_to_index(index, xb[:1000], ids[:1000])
    buffer = index.store.codes.data()
    for start in range(1000, NB, 1000):
        add_to_index(index, xb[start : start + 1000], ids[start : start + 1000])
    # the same buffer: no add reallocated (without the reservation the third add moves it)
    assert int(index.store.codes.data()) == int(buffer)
    whole = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, store="fp16", xt=xb)
    np.testing.assert_array_equal(search(index, xq, K, nprobe=8, k_factor=8)[1],
                                  search(whole, xq, K, nprobe=8, k_factor=8)[1])


def test_mapped_index_searches_alike_and_is_read_only(data: Data, tmp_path: Path) -> None:
    xb, ids, xq = data
    index = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, store="fp16")
    save_index(index, tmp_path / "ix")
    mapped = load_index(tmp_path / "ix", mmap=True)
    assert mapped.mapped and not load_index(tmp_path / "ix").mapped
    D1, I1 = search(index, xq, K, nprobe=8, k_factor=8)
    D2, I2 = search(mapped, xq, K, nprobe=8, k_factor=8)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2)
    np.testing.assert_array_equal(stored_vectors(mapped)[0], stored_vectors(index)[0])
    with pytest.raises(ValueError, match="read-only"):
        add_to_index(mapped, xq[:2], np.array([2**62 + 1, 2**62 + 2]))


def test_recall_at_k_counts_intersections() -> None:
    I_exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    I_approx = np.array([[4, 3, 9, 9], [5, 6, 7, -1]])
    assert recall_at_k(I_approx, I_exact) == pytest.approx((2 + 3) / 8)
    assert recall_at_k(I_approx, I_exact, k=2) == pytest.approx((0 + 2) / 4)
    with pytest.raises(ValueError, match="need"):
        recall_at_k(I_approx[:, :2], I_exact)


def stored_cells(index: IvfpqIndex) -> np.ndarray:
    """The IVF cell of each stored vector, in storage (position) order."""
    xb, _ = stored_vectors(index)
    _, cell = faiss.extract_index_ivf(index.index).quantizer.search(xb, 1)
    return cell[:, 0]


def test_vectors_are_stored_grouped_by_cell(data: Data, built: IvfpqIndex) -> None:
    xb, ids, _ = data
    cells = stored_cells(built)
    assert (np.diff(cells) >= 0).all() and len(np.unique(cells)) > 1
    stored, stored_ids = stored_vectors(built)
    by_id = dict(zip(ids.tolist(), range(NB), strict=True))
    np.testing.assert_array_equal(stored, xb[[by_id[i] for i in stored_ids.tolist()]])


def test_incremental_add_of_a_new_partition(data: Data) -> None:
    xb, ids, xq = data
    half = NB // 2
    index = build_ivfpq_index(xb[:half], ids[:half], nlist=NLIST, m=M, nbits=NBITS)
    assert add_to_index(index, xb[half:], ids[half:]) == NB - half
    assert index.ntotal == NB
    assert add_to_index(index, xb[half:], ids[half:]) == 0  # re-running the add is a no-op
    assert index.ntotal == NB
    _, I_exact = exact_search(xb, xq, K, ids=ids)
    _, I = search(index, xq, K, nprobe=8, k_factor=8)
    assert recall_at_k(I, I_exact) >= RECALL_BAR
    assert np.isin(I, ids[half:]).any()  # the new partition is searchable
    cells = stored_cells(index)
    assert (np.diff(cells[:half]) >= 0).all() and (np.diff(cells[half:]) >= 0).all()
    with pytest.raises(ValueError, match="duplicates"):
        add_to_index(index, xb[:2], np.array([5, 5]))
    with pytest.raises(ValueError, match="shape"):
        add_to_index(index, xb[:2, :16], ids[:2])


def test_retrain_policy_and_retrain(data: Data) -> None:
    xb, ids, _ = data
    index = build_ivfpq_index(xb[:1000], ids[:1000], nlist=16, m=M, nbits=NBITS)
    assert not needs_retrain(index, growth_factor=2.0)
    add_to_index(index, xb[1000:1999], ids[1000:1999])
    assert not needs_retrain(index, growth_factor=2.0)  # 1999 < 2 * 1000
    add_to_index(index, xb[1999:2000], ids[1999:2000])
    assert needs_retrain(index, growth_factor=2.0)
    retrained = retrain_index(index, nlist=suggest_nlist(index.ntotal))
    assert retrained.ntotal_at_train == retrained.ntotal == 2000
    assert not needs_retrain(retrained, growth_factor=2.0)
    assert sorted(indexed_ids(retrained)) == sorted(ids[:2000])
    xb_stored, ids_stored = stored_vectors(retrained)
    order = {int(i): r for r, i in enumerate(ids[:2000])}
    np.testing.assert_array_equal(xb_stored, xb[[order[int(i)] for i in ids_stored]])
    with pytest.raises(ValueError, match="growth_factor"):
        needs_retrain(index, growth_factor=1.0)


def test_save_load_round_trip(tmp_path: Path, data: Data, built: IvfpqIndex) -> None:
    _, _, xq = data
    save_index(built, tmp_path / "ivf")
    loaded = load_index(tmp_path / "ivf")
    assert loaded.params == built.params
    assert loaded.ntotal_at_train == built.ntotal_at_train
    D0, I0 = search(built, xq, K, nprobe=8, k_factor=4)
    D1, I1 = search(loaded, xq, K, nprobe=8, k_factor=4)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_allclose(D0, D1)
    meta = json.loads((tmp_path / "ivf" / "index.json").read_text())
    assert meta["params"]["nlist"] == NLIST
    assert not list((tmp_path / "ivf").glob(".*"))  # no temporary files left behind


def test_load_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexNotTrainedError, match="no index at"):
        load_index(tmp_path / "nothing")


def test_measure_recall_uses_stored_vectors(data: Data, built: IvfpqIndex) -> None:
    _, _, xq = data
    assert measure_recall(built, xq, k=K, nprobe=8, k_factor=8) >= RECALL_BAR


def test_build_rejects_bad_input(data: Data) -> None:
    xb, ids, _ = data
    with pytest.raises(ValueError, match="divide"):
        build_ivfpq_index(xb, ids, nlist=16, m=5)
    with pytest.raises(ValueError, match="training vectors"):
        build_ivfpq_index(xb[:100], ids[:100], nlist=16, m=8, nbits=8)
    with pytest.raises(ValueError, match="duplicates"):
        build_ivfpq_index(xb[:300], np.zeros(300, dtype=np.int64), nlist=4, m=8, nbits=6)
    bad = xb[:300].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build_ivfpq_index(bad, ids[:300], nlist=4, m=8, nbits=6)


def test_untrained_index_raises() -> None:
    with pytest.raises(IndexNotTrainedError):
        search(faiss.IndexIVFFlat(faiss.IndexFlatIP(8), 8, 4), np.zeros((1, 8), "float32"), 1,
               nprobe=1, k_factor=1)


def test_suggest_nlist_keeps_cells_of_a_constant_size() -> None:
    assert suggest_nlist(1_000_000) == 10_000
    assert suggest_nlist(100_000) == 1_000
    assert suggest_nlist(100_000, cell_size=50) == 2_000
    assert suggest_nlist(10) == 1
    for nb in (100, 2_000, 5_000, 50_000):
        assert nb / suggest_nlist(nb, cell_size=10) >= 39  # never under-trained cells
    with pytest.raises(ValueError, match="cell_size"):
        suggest_nlist(1000, cell_size=0)


@pytest.fixture(scope="module")
def many_cells() -> tuple[np.ndarray, np.ndarray, object]:
    """1,100 cells (two-level K-means) over 44k vectors, HNSW and flat coarse quantizers."""
    xb = clustered(44_000, seed=3, n_clusters=400)
    ids = np.arange(len(xb))
    hnsw = build_ivfpq_index(xb, ids, nlist=1100, m=M, nbits=NBITS)
    return xb, ids, hnsw


def test_hnsw_coarse_quantizer_finds_the_nearest_cells(
    many_cells: tuple[np.ndarray, np.ndarray, object]
) -> None:
    _, _, index = many_cells
    ivf = faiss.extract_index_ivf(index.index)
    quantizer = faiss.downcast_index(ivf.quantizer)
    assert isinstance(quantizer, faiss.IndexHNSWFlat) and quantizer.ntotal == 1100
    assert index.params.coarse == "hnsw"
    xq = clustered(200, seed=4, n_clusters=400)
    nprobe = 16
    params = ivf_search_parameters(index.index, nprobe)
    _, cells = quantizer.search(xq, nprobe, params=params.quantizer_params)
    centroids = quantizer.reconstruct_n(0, quantizer.ntotal)
    _, exact_cells = exact_search(centroids, xq, nprobe)
    assert recall_at_k(cells, exact_cells) >= 0.99


def test_scan_cap_bounds_the_codes_one_query_visits(
    many_cells: tuple[np.ndarray, np.ndarray, object]
) -> None:
    xb, ids, index = many_cells
    xq = clustered(50, seed=5, n_clusters=400)
    stats = faiss.cvar.indexIVF_stats
    stats.reset()
    search(index, xq, K, nprobe=64, k_factor=4)
    uncapped = stats.ndis / len(xq)
    stats.reset()
    _, I = search(index, xq, K, nprobe=64, k_factor=4, max_codes=1000)
    capped = stats.ndis / len(xq)
    lists = faiss.extract_index_ivf(index.index).invlists
    biggest_cell = max(lists.list_size(c) for c in range(lists.nlist))
    assert uncapped > 1500
    assert capped <= 1000 + biggest_cell  # faiss finishes the cell it is in
    _, I_exact = exact_search(xb, xq, K, ids=ids)
    assert recall_at_k(I, I_exact) >= 0.85  # the nearest cells are scanned first


def test_an_index_saved_with_a_flat_coarse_quantizer_still_loads(
    tmp_path: Path, data: Data
) -> None:
    xb, ids, xq = data
    old = build_ivfpq_index(xb, ids, nlist=NLIST, m=M, nbits=NBITS, coarse="flat")
    save_index(old, tmp_path / "ivf")
    meta_file = tmp_path / "ivf" / "index.json"
    meta = json.loads(meta_file.read_text())
    del meta["params"]["coarse"]  # written before the HNSW quantizer existed
    meta_file.write_text(json.dumps(meta))
    loaded = load_index(tmp_path / "ivf")
    assert loaded.params.coarse == "flat"
    _, I_exact = exact_search(xb, xq, K, ids=ids)
    assert recall_at_k(search(loaded, xq, K, nprobe=8, k_factor=8)[1], I_exact) >= RECALL_BAR


