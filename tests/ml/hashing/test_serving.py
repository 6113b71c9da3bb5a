"""Binary index results against brute-force Hamming search, and the re-rank path."""

from __future__ import annotations

import numpy as np
import pytest

from ml.hashing.dmch import coarse_to_fine_rank, hamming_distances
from ml.hashing.serving import HammingIndex, pack_codes, unpack_codes


def _random_codes(n: int, bits: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (n, bits), dtype=np.uint8)


def test_pack_roundtrip_and_validation() -> None:
    codes = _random_codes(5, 24, 0)
    packed = pack_codes(codes)
    assert packed.shape == (5, 3) and packed.dtype == np.uint8
    assert np.array_equal(unpack_codes(packed, 24), codes)
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_codes(np.zeros((2, 12)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        pack_codes(np.full((2, 8), 2))


def test_flat_index_equals_brute_force_hamming() -> None:
    db, q = _random_codes(500, 32, 1), _random_codes(20, 32, 2)
    ids = np.arange(500, dtype=np.int64) * 7 + 3
    index = HammingIndex(32).build(db, ids=ids)
    assert index.kind == "flat"
    D, I = index.search(q, 10)
    brute = hamming_distances(q, db)
    expected_D = np.sort(brute, axis=1)[:, :10]
    assert np.array_equal(D, expected_D)
    # returned ids are at the reported distances (ties may come in any order)
    positions = (I - 3) // 7
    assert np.array_equal(np.take_along_axis(brute, positions, 1), D)


def test_ivf_index_recall_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2, (20, 64), dtype=np.uint8)
    flips = rng.random((4000, 64)) < 0.05
    db = centres[rng.integers(0, 20, 4000)] ^ flips
    q = db[:50] ^ (rng.random((50, 64)) < 0.05)
    index = HammingIndex(64, ivf_min_size=1000, nlist=32, nprobe=8).build(db)
    assert index.kind == "ivf"
    D, _ = index.search(q, 10)
    exact = np.sort(hamming_distances(q, db), axis=1)[:, :10]
    assert np.mean(D == exact) > 0.9


def test_rerank_equals_brute_force_coarse_to_fine() -> None:
    db, q = _random_codes(300, 16, 4), _random_codes(8, 16, 5)
    rng = np.random.default_rng(6)
    u_db = np.where(db == 1, 0.5 + 0.5 * rng.random(db.shape), 0.5 * rng.random(db.shape))
    u_q = np.where(q == 1, 0.75, 0.25)
    index = HammingIndex(16).build(db, values=u_db)
    assert index.bytes_per_sample == 2 + 8 + 2 + 32
    assert HammingIndex(16).build(db).bytes_per_sample == 2 + 8
    D, I = index.search_rerank(q, u_q, k=5, top_m=300)
    D_ref, I_ref = coarse_to_fine_rank(q, u_q, db, u_db.astype(np.float16).astype(np.float32), 300)
    assert np.array_equal(I, I_ref[:, :5])
    assert np.allclose(D, D_ref[:, :5], atol=1e-5)
    with pytest.raises(RuntimeError, match="values"):
        HammingIndex(16).build(db).search_rerank(q, u_q, k=5, top_m=10)
