"""DUWH: deep unsupervised weighted hashing.

Specification: ``../shared/papers/duwh-deep-unsupervised-weighted-hashing.txt``, Eq. 1-18
and "Datasets and Settings" (K1 = 20, K2 = 30, n = 2, lambda = 10, batch 128, lr 2e-5, one
similarity update after the first epoch).

The paper fine-tunes a Swin-T end to end. On cached backbone features (CPU) this module
trains a *feature layer* that stands in for the fine-tuned last stage plus the tanh hash
layer (Eq. 1). The feature layer is square and starts as the identity, so the
"fine-tuned features" ``F_bar`` of Eq. 6 start at the backbone features and drift as
training goes; with ``feature_dim=0`` only the hash layer is trained.

The pseudo-label matrix M (Eq. 3-5, 12) is kept sparse: a ``scipy.sparse.csr_matrix`` that
stores only the similar pairs (``M_ij = 1``); every absent pair means ``M_ij = -1``.
Nothing of size n x n is ever dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from torch import nn

_BLOCK = 2048


class DUWHNet(nn.Module):
    """Feature layer + tanh hash layer: ``h = tanh(W_h F_bar(x))`` (DUWH Eq. 1).

    Args:
        in_dim: backbone feature dimension.
        n_bits: code length k (16, 24, 32 or 48 in the paper).
        feature_dim: width of the trainable feature layer; it must equal ``in_dim`` (it
            starts as the identity) or be 0 to train the hash layer alone.
    """

    def __init__(self, in_dim: int, n_bits: int, feature_dim: int | None = None) -> None:
        super().__init__()
        feature_dim = in_dim if feature_dim is None else feature_dim
        if feature_dim not in (0, in_dim):
            raise ValueError(f"feature_dim must be 0 or in_dim={in_dim}; got {feature_dim}")
        if n_bits < 1:
            raise ValueError(f"n_bits must be >= 1; got {n_bits}")
        self.n_bits = n_bits
        self.features = nn.Identity() if feature_dim == 0 else _identity_layer(in_dim)
        self.hash = nn.Linear(in_dim, n_bits)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Fine-tuned features ``F_bar(x, W_bar)`` of Eq. 6 (the network minus its hash layer)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Approximate codes ``h(x) = tanh(F(x, W))`` of Eq. 1, shape (B, k), in (-1, 1)."""
        return torch.tanh(self.hash(self.embed(x)))


def _identity_layer(dim: int) -> nn.Sequential:
    """Linear + LeakyReLU initialised to the identity (exact on non-negative features)."""
    linear = nn.Linear(dim, dim)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(dim))
        linear.bias.zero_()
    return nn.Sequential(linear, nn.LeakyReLU(0.01))


def binarize(h: np.ndarray | torch.Tensor) -> np.ndarray:
    """Binary codes of Eq. 2 mapped to {0, 1}: bit ``a`` is 1 when ``h_a(x) >= 0``.

    Args:
        h: approximate codes, shape (n, k).

    Returns:
        uint8 codes of shape (n, k); ``2 b - 1`` gives the paper's {-1, 1} codes.
    """
    if isinstance(h, torch.Tensor):
        h = h.detach().cpu().numpy()
    return (np.asarray(h) >= 0).astype(np.uint8)


def _normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2-normalised float32 copy of ``x``."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (n, d); got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_knn(x: np.ndarray, k: int, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of every row, self excluded: ``nn^c_K1`` of Eq. 3.

    Exact search: ``faiss.IndexFlatIP`` on normalised features when ``device`` is None and
    faiss imports, otherwise blocked inner products in torch on ``device`` (``"cpu"`` when
    None), which is how it runs on a machine without faiss (the GPU benchmark).

    Args:
        x: features of shape (n, d).
        k: K1, neighbours per row; at most n - 1.
        device: torch device of the exact search; None prefers faiss on the CPU.

    Returns:
        (I, S): neighbour indices and cosine similarities, each of shape (n, k), nearest first.
    """
    xn = _normalize(x)
    n = len(xn)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1={n - 1}]; got {k}")
    if device is None:
        try:
            import faiss
        except ImportError:
            device = "cpu"
        else:
            index = faiss.IndexFlatIP(xn.shape[1])
            index.add(xn)
            S, I = index.search(xn, k + 1)
            return _drop_self(I, S, k)
    S, I = _torch_inner_product_topk(xn, k + 1, torch.device(device))
    return _drop_self(I, S, k)


def _torch_inner_product_topk(
    xn: np.ndarray, k: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of every row against all rows, in query blocks.

    Returns:
        (S, I) of shape (n, k), float32 and int64, largest first (faiss's order).
    """
    xb = torch.from_numpy(xn).to(device)
    S, I = [], []
    for s in range(0, len(xn), _BLOCK):
        top = torch.topk(xb[s : s + _BLOCK] @ xb.T, k, dim=1)
        S.append(top.values.cpu().numpy())
        I.append(top.indices.cpu().numpy())
    return np.concatenate(S).astype(np.float32), np.concatenate(I).astype(np.int64)


def _drop_self(I: np.ndarray, S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from its k + 1 search results (or the last result)."""
    rows = np.arange(len(I))[:, None]
    is_self = I == rows
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(I, dtype=bool)
    keep[np.arange(len(I)), drop] = False
    return I[keep].reshape(len(I), k), S[keep].reshape(len(I), k)


def knn_graph(I: np.ndarray, n: int) -> sparse.csr_matrix:
    """Sparse 0/1 matrix A with ``A_ij = 1`` when j is among i's neighbours ``I[i]``."""
    rows = np.repeat(np.arange(len(I)), I.shape[1])
    data = np.ones(rows.size, dtype=np.float32)
    return sparse.csr_matrix((data, (rows, I.ravel())), shape=(n, n))


def shared_neighbour_knn(I: np.ndarray, xn: np.ndarray, k2: int) -> list[np.ndarray]:
    """Top-K2 rows by number of shared K1-neighbours: ``nn^s_K2`` of Eq. 4.

    Shared counts come from the sparse product ``A A^T`` of the K1-neighbour graph; only
    pairs with at least one shared neighbour are candidates and ties are broken by cosine
    similarity.

    Args:
        I: K1-neighbour indices, shape (n, K1).
        xn: L2-normalised features, shape (n, d), for the tie-break.
        k2: K2.

    Returns:
        One array of at most K2 neighbour indices per row.
    """
    A = knn_graph(I, len(I))
    shared = (A @ A.T).tocsr()
    shared.setdiag(0)
    shared.eliminate_zeros()
    return [_top_shared(shared, xn, i, k2) for i in range(len(I))]


def _top_shared(shared: sparse.csr_matrix, xn: np.ndarray, i: int, k2: int) -> np.ndarray:
    """Row i's K2 candidates with most shared neighbours, cosine breaking ties."""
    lo, hi = shared.indptr[i], shared.indptr[i + 1]
    cols, counts = shared.indices[lo:hi], shared.data[lo:hi]
    score = counts + 0.25 * (1.0 + xn[cols] @ xn[i])
    return cols[np.argsort(-score, kind="stable")[:k2]]


def double_knn_similarity(
    x: np.ndarray, k1: int = 20, k2: int = 30, device: str | None = None
) -> sparse.csr_matrix:
    """Initial pseudo-label matrix M of DUWH Eq. 3-5, stored sparse.

    ``M_ij = 1`` when ``x_j`` is in the cosine top-K1 of ``x_i`` (Eq. 3, ``M_1st``) and in
    its top-K2 by shared neighbours (Eq. 4, ``M_2nd``); Eq. 5 takes the AND. The result is
    symmetrised (``M_ij = M_ji = 1`` if either direction holds) and the diagonal is 1.

    Args:
        x: features of shape (n, d).
        k1: K1 (20 in the paper).
        k2: K2 (30 in the paper).
        device: device of the cosine k-NN search (see :func:`cosine_knn`).

    Returns:
        csr_matrix (n, n) of int8 ones at the similar pairs; absent entries mean -1.
    """
    I, _ = cosine_knn(x, k1, device)
    xn = _normalize(x)
    second = shared_neighbour_knn(I, xn, k2)
    rows, cols = [], []
    for i, (first_i, second_i) in enumerate(zip(I, second, strict=True)):
        both = np.intersect1d(first_i, second_i, assume_unique=True)
        rows.append(np.full(len(both), i))
        cols.append(both)
    return _symmetric_pairs(np.concatenate(rows), np.concatenate(cols), len(x))


def _symmetric_pairs(rows: np.ndarray, cols: np.ndarray, n: int) -> sparse.csr_matrix:
    """Sparse int8 matrix with ones at (rows, cols), their transposes and the diagonal."""
    diag = np.arange(n)
    r = np.concatenate([rows, cols, diag])
    c = np.concatenate([cols, rows, diag])
    M = sparse.csr_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(n, n))
    M.data[:] = 1
    return M


def weighted_similarity(
    xn: np.ndarray, I: np.ndarray, S: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Weighted similarity ``s^new_ij`` of DUWH Eq. 7-10 for the given pairs.

    * Eq. 8: ``s_ij = cos(x_i, x_j)``.
    * Eq. 7: ``w(x_i, x_{i-g}) = s_{i,i-g} / sum_n s_{i,i-n}`` over i's neighbours ``I[i]``.
    * Eq. 9: ``sw(x_i) = sum_g s_{i,j-g} w(x_j, x_{j-g})`` (i against j's neighbours), which
      equals ``x_i . c_j`` with the weighted neighbour centroid ``c_j = sum_g w_jg x_{j-g}``.
    * Eq. 10: ``s^new_ij = s_ij / 2 + (sw(x_i) + sw(x_j)) / 4``.

    Args:
        xn: L2-normalised features, shape (n, d).
        I: neighbour indices, shape (n, G).
        S: cosine similarities to those neighbours, shape (n, G).
        rows: i of each pair, shape (p,).
        cols: j of each pair, shape (p,).

    Returns:
        ``s^new`` for each pair, shape (p,).
    """
    total = S.sum(axis=1, keepdims=True)
    weights = S / np.where(np.abs(total) < 1e-12, 1.0, total)
    centroids = np.concatenate(
        [
            np.einsum("ng,ngd->nd", weights[b : b + _BLOCK], xn[I[b : b + _BLOCK]])
            for b in range(0, len(xn), _BLOCK)
        ]
    )
    s = _pair_dots(xn, xn, rows, cols)
    sw_i = _pair_dots(xn, centroids, rows, cols)
    sw_j = _pair_dots(xn, centroids, cols, rows)
    return 0.5 * s + 0.25 * (sw_i + sw_j)


def _pair_dots(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``a[rows[p]] . b[cols[p]]`` for every pair p, in blocks to bound memory."""
    out = np.empty(len(rows), dtype=np.float32)
    for s in range(0, len(rows), _BLOCK * 8):
        r, c = rows[s : s + _BLOCK * 8], cols[s : s + _BLOCK * 8]
        out[s : s + len(r)] = np.einsum("pd,pd->p", a[r], b[c])
    return out


def update_similarity(
    M0: sparse.csr_matrix,
    x_new: np.ndarray,
    k1: int = 20,
    k2: int = 30,
    device: str | None = None,
) -> tuple[sparse.csr_matrix, float]:
    """Similarity-matrix update of DUWH Eq. 6-12 from fine-tuned features.

    Eq. 6 rebuilds ``M^new`` by the double-layer k-NN on ``x_new = F_bar(x)``. Eq. 10 gives
    the weighted similarity ``s^new`` of every similar pair of the initial matrix ``M0``;
    Eq. 11 sets the threshold ``u`` to their mean; Eq. 12 keeps the initial similar pairs
    with ``s^new_ij >= u`` as similar and takes ``M^new_ij`` everywhere else, i.e.
    ``M^f = M^new OR (M0 AND s^new >= u)``.

    Args:
        M0: initial sparse pseudo-labels (ones at similar pairs), shape (n, n).
        x_new: fine-tuned features, shape (n, d).
        k1: K1 of the rebuilt k-NN and of the weighted structure's neighbourhoods.
        k2: K2 of the rebuilt k-NN.
        device: device of the cosine k-NN searches (see :func:`cosine_knn`).

    Returns:
        (M^f as csr_matrix, threshold u).
    """
    if M0.shape != (len(x_new), len(x_new)):
        raise ValueError(f"M0 must have shape ({len(x_new)}, {len(x_new)}); got {M0.shape}")
    M_new = double_knn_similarity(x_new, k1, k2, device)
    I, S = cosine_knn(x_new, k1, device)
    coo = sparse.triu(M0, k=1).tocoo()
    s_new = weighted_similarity(_normalize(x_new), I, S, coo.row, coo.col)
    u = float(s_new.mean()) if s_new.size else 1.0
    keep = s_new >= u
    kept = _symmetric_pairs(coo.row[keep], coo.col[keep], len(x_new))
    M_f = (M_new + kept).tocsr()
    M_f.data[:] = 1
    return M_f, u


def batch_targets(M: sparse.csr_matrix, idx: np.ndarray) -> torch.Tensor:
    """Dense pseudo-labels ``m_ij`` in {-1, 1} of one batch, shape (B, B)."""
    block = M[idx][:, idx].toarray() > 0
    return torch.from_numpy(np.where(block, 1.0, -1.0).astype(np.float32))


def cosine_matrix(h: torch.Tensor) -> torch.Tensor:
    """``s_ij = cos(h_i, h_j)`` of Eq. 8/13 for all batch pairs, shape (B, B)."""
    hn = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return hn @ hn.T


def adaptive_weights(s: torch.Tensor, n: int = 2, eps: float = 1e-8) -> torch.Tensor:
    """Adaptive pair weights of DUWH Eq. 15-16: ``w_ij = -log q_ij``.

    ``q_ij = s_ij^n / sum_{g,j} s_gj^n`` (``f`` is the identity, ``n`` even so every term is
    positive): pairs with a small similarity are unlikely to be picked as "most similar" and
    get large weights. The weights are conditioning factors, so no gradient flows through them.

    Args:
        s: pairwise cosine similarities, shape (B, B).
        n: the even exponent n (2 in the paper).
        eps: floor of ``s^n`` that keeps ``log`` finite.

    Returns:
        Weights of shape (B, B).
    """
    if n < 2 or n % 2:
        raise ValueError(f"n must be an even integer >= 2; got {n}")
    powered = s.detach().pow(n).clamp_min(eps)
    return -torch.log(powered / powered.sum())


@dataclass(frozen=True)
class DUWHLossConfig:
    """Hyper-parameters and ablation switches of DUWH Eq. 17-18.

    Attributes:
        lam: lambda, weight of the quantization loss (10 in the paper).
        n: exponent n of Eq. 16 (2 in the paper).
        adaptive: adaptive weights of Eq. 15 (off = plain Eq. 13 loss, DUWH-2).
    """

    lam: float = 10.0
    n: int = 2
    adaptive: bool = True


def duwh_loss(
    h: torch.Tensor, m: torch.Tensor, config: DUWHLossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """DUWH objective of Eq. 18: ``L = L_a + lambda L_q`` on one batch.

    * Eq. 17 ``L_a = mean_ij w_ij (s_ij - m_ij)^2`` with ``s_ij = cos(h_i, h_j)``.
    * Eq. 18 ``L_q = ||B - H||_F^2 / (B k)`` with ``B = sgn(H)`` (no gradient through B).

    The paper's double sums are averaged (over B^2 pairs and B k entries) so the loss scale
    does not depend on the batch size or code length.

    Args:
        h: approximate codes H, shape (B, k).
        m: pseudo-labels m_ij in {-1, 1}, shape (B, B).
        config: lambda, n and the adaptive switch.

    Returns:
        (total loss, {"sim": L_a, "quant": L_q}) with L_q unweighted.
    """
    s = cosine_matrix(h)
    w = adaptive_weights(s, config.n) if config.adaptive else torch.ones_like(s)
    sim = (w * (s - m).pow(2)).mean()
    quant = (torch.sign(h).detach() - h).pow(2).mean()
    return sim + config.lam * quant, {"sim": float(sim.detach()), "quant": float(quant.detach())}


def make_optimizer(model: nn.Module, lr: float = 2e-5) -> torch.optim.Adam:
    """Adam at the paper's learning rate 2e-5 (the optimiser itself is not named there)."""
    return torch.optim.Adam(model.parameters(), lr=lr)
