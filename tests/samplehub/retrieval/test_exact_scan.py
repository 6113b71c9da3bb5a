"""The exact plan's matrix-product scan against faiss' exact search of the same vectors."""

from __future__ import annotations

import numpy as np
import pytest

from samplehub.index.ivfpq import build_ivfpq_index, exact_search, stored_vectors
from samplehub.retrieval.planner import AllowedPositions
from samplehub.retrieval.search import IvfpqSearch, float32_rows

D, NB = 32, 3_000


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("store", ["flat", "fp16"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_scan_matches_exact_search(
    store: str, metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("samplehub.retrieval.search.SCAN_BLOCK", 700)  # several blocks
    xb, xq = unit(NB, 0), unit(5, 1)
    index = build_ivfpq_index(xb, np.arange(NB), 16, 8, 6, store=store, metric=metric)  # type: ignore[arg-type]
    vectors = IvfpqSearch.of(index, np.arange(NB, dtype=np.int64))
    assert vectors.xb is not None
    assert vectors.xb.dtype == (np.float32 if store == "flat" else np.float16)
    stored, _ = stored_vectors(index)  # as the store keeps them (fp16 rounded)
    mask = np.random.default_rng(2).random(NB) < 0.3
    allowed = AllowedPositions.of(mask)
    for subset in (None, allowed):
        D_scan, I_scan = vectors.scan(xq, 10, subset)
        rows = np.arange(NB) if subset is None else np.flatnonzero(mask)
        D_ref, I_ref = exact_search(stored[rows], xq, 10, metric, rows)  # type: ignore[arg-type]
        np.testing.assert_array_equal(I_scan, I_ref)
        np.testing.assert_allclose(D_scan, D_ref, rtol=1e-4, atol=1e-4)


def test_scan_pads_when_fewer_allowed_than_k() -> None:
    xb = unit(500, 3)
    index = build_ivfpq_index(xb, np.arange(500), 4, 8, 6, store="fp16")
    vectors = IvfpqSearch.of(index, np.arange(500, dtype=np.int64))
    mask = np.zeros(500, bool)
    mask[[7, 42, 99]] = True
    D, I = vectors.scan(unit(2, 4), 5, AllowedPositions.of(mask))
    assert set(I[:, :3].ravel()) == {7, 42, 99} and (I[:, 3:] == -1).all()
    assert np.isnan(D[:, 3:]).all()


def test_float32_rows_widens_halves_exactly() -> None:
    # every finite half, subnormals, zeros of both signs, infinities and NaN
    halves = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    xb = halves.reshape(-1, 64)
    rows = np.random.default_rng(5).permutation(len(xb))[:700]
    out = np.empty((len(rows), 64), np.float32)
    widened = float32_rows(xb, rows, out)
    assert widened is out
    expected = xb[rows].astype(np.float32)
    nan = np.isnan(expected)
    assert (np.isnan(widened) == nan).all()  # a NaN's payload may differ (quietened)
    np.testing.assert_array_equal(widened.view(np.uint32)[~nan], expected.view(np.uint32)[~nan])
    flat = xb.astype(np.float32)
    np.testing.assert_array_equal(float32_rows(flat, rows, out), flat[rows])
