"""DUWH: sparse double-layer k-NN against brute force, Eq. 7-12 update, Eq. 15-18 losses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from scipy import sparse

from ml.hashing import duwh

if TYPE_CHECKING:
    from conftest import ClusterFactory, Clusters


def _brute_force_double_knn(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn @ xn.T
    np.fill_diagonal(cos, -np.inf)
    first = np.argsort(-cos, axis=1, kind="stable")[:, :k1]
    A = np.zeros_like(cos, dtype=int)
    A[np.arange(len(x))[:, None], first] = 1
    shared = A @ A.T
    np.fill_diagonal(shared, 0)
    M = np.eye(len(x), dtype=bool)
    for i in range(len(x)):
        cand = np.flatnonzero(shared[i])
        score = shared[i, cand] + 0.25 * (1 + cos[i, cand])
        second = cand[np.argsort(-score, kind="stable")[:k2]]
        both = np.intersect1d(first[i], second)
        M[i, both] = M[both, i] = True
    return M


def test_cosine_knn_matches_brute_force(clusters: Clusters) -> None:
    x, _ = clusters
    I, S = duwh.cosine_knn(x, 5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn @ xn.T
    np.fill_diagonal(cos, -np.inf)
    assert not np.any(I == np.arange(len(x))[:, None])
    expected = -np.sort(-cos, axis=1)[:, :5]
    assert np.allclose(S, expected, atol=1e-5)


def test_double_knn_sparse_matches_dense_brute_force(cluster_factory: ClusterFactory) -> None:
    x, _ = cluster_factory(n_classes=4, per_class=30, dim=16, spread=1.0, seed=3)
    M = duwh.double_knn_similarity(x, k1=6, k2=8)
    assert sparse.issparse(M)
    assert np.array_equal(M.toarray() > 0, _brute_force_double_knn(x, 6, 8))
    assert M.nnz < 0.2 * len(x) ** 2


def test_double_knn_pairs_are_mostly_same_class(clusters: Clusters) -> None:
    x, y = clusters
    coo = sparse.triu(duwh.double_knn_similarity(x, 10, 15), k=1).tocoo()
    assert np.mean(y[coo.row] == y[coo.col]) > 0.95


def test_weighted_similarity_eq7_to_10_by_hand() -> None:
    xn = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    I = np.array([[2], [2], [1]])
    S = np.array([[0.6], [0.8], [0.8]])
    # single neighbour -> weight 1, centroid = that neighbour
    s = duwh.weighted_similarity(xn, I, S, np.array([0]), np.array([1]))
    sw_0 = xn[0] @ xn[2]  # x_0 against x_1's neighbour x_2
    sw_1 = xn[1] @ xn[2]  # x_1 against x_0's neighbour x_2
    assert s[0] == pytest.approx(0.5 * 0.0 + 0.25 * (sw_0 + sw_1))


def test_update_keeps_strong_initial_pairs_and_new_knn(clusters: Clusters) -> None:
    x, _ = clusters
    M0 = duwh.double_knn_similarity(x, 10, 15)
    rng = np.random.default_rng(0)
    x_new = x + 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    M_f, u = duwh.update_similarity(M0, x_new, 10, 15)
    M_new = duwh.double_knn_similarity(x_new, 10, 15)
    dense_f, dense_new, dense_0 = M_f.toarray() > 0, M_new.toarray() > 0, M0.toarray() > 0
    assert np.all(dense_f >= dense_new)  # M^new pairs are kept (Eq. 12, otherwise-branch)
    assert np.all(dense_f <= dense_new | dense_0)  # additions come only from M0
    assert -1.0 <= u <= 1.0
    with pytest.raises(ValueError, match="M0"):
        duwh.update_similarity(M0[:10, :10], x_new, 10, 15)


def test_hash_layer_codes_and_identity_features() -> None:
    model = duwh.DUWHNet(in_dim=12, n_bits=16)
    x = torch.rand(5, 12)
    assert torch.allclose(model.embed(x), x)  # identity start on non-negative features
    h = model(x)
    assert h.shape == (5, 16) and torch.all(h.abs() < 1)
    codes = duwh.binarize(h)
    assert codes.shape == (5, 16) and set(np.unique(codes)) <= {0, 1}


def test_adaptive_weights_eq15_16() -> None:
    s = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    w = duwh.adaptive_weights(s, n=2)
    total = 1 + 0.25 + 0.25 + 1
    assert w[0, 1] == pytest.approx(-np.log(0.25 / total))
    assert w[0, 1] > w[0, 0]  # the less similar pair weighs more
    with pytest.raises(ValueError, match="even"):
        duwh.adaptive_weights(s, n=3)


def test_loss_falls_on_clustered_data(clusters: Clusters) -> None:
    x, _ = clusters
    M = duwh.double_knn_similarity(x, 10, 15)
    torch.manual_seed(0)
    model = duwh.DUWHNet(x.shape[1], 16)
    opt = duwh.make_optimizer(model, lr=1e-3)
    xt = torch.from_numpy(x)
    cfg = duwh.DUWHLossConfig()
    losses = []
    rng = np.random.default_rng(0)
    for _ in range(40):
        idx = rng.choice(len(x), 64, replace=False)
        loss, parts = duwh.duwh_loss(model(xt[idx]), duwh.batch_targets(M, idx), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"sim", "quant"}
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
