"""DMCH: deep metric and category-level semantic hashing (supervised).

Specification: ``../shared/papers/dmch-deep-metric-category-hashing.txt``, section 3
(Eq. 1-7) and the settings of section 4.2. The hashing network runs on backbone features
``G`` (the paper: 2048-d Inception-v3; here whatever ``ml.features`` yields):

* ``f1 -> f2 -> H -> output`` with 1024, 512, K and C units; LeakyReLU after f1 and f2, a
  sigmoid on the hidden (latent) layer H whose K activations are the relaxed codes ``f(G)``.
* Triplets come from P classes x K images per batch (:class:`PKSampler`; the paper uses
  3 x 30 = 90) and BatchAll keeps every triplet with a positive loss (Sec. 3.3).
* Loss Eq. 6: ``L_tri + lambda L_cat + gamma L_push + alpha L_bal`` with a switch per term.
* Codes by Eq. 1, ranking by Hamming distance and the coarse-to-fine distance of Eq. 7.

The paper gives ``m = 0.2`` and ``gamma = 0.001`` but not ``lambda`` or ``alpha``; both
default to 1.0 here. The sums over triplets of Eq. 2-5 are divided by the number of
selected triplets M so the loss scale does not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class DMCHNet(nn.Module):
    """Hash network of DMCH Sec. 3.2: ``f1 (1024) -> f2 (512) -> H (K, sigmoid) -> C``.

    Args:
        in_dim: backbone feature dimension (2048 for the paper's Inception-v3).
        n_bits: code length K (32, 64 or 96 in the paper).
        n_classes: number of categories C of the classification output layer.
    """

    def __init__(self, in_dim: int, n_bits: int, n_classes: int) -> None:
        super().__init__()
        if min(in_dim, n_bits, n_classes) < 1:
            raise ValueError(
                f"in_dim, n_bits and n_classes must be >= 1; got {in_dim}, {n_bits}, {n_classes}"
            )
        self.n_bits = n_bits
        self.body = nn.Sequential(
            nn.Linear(in_dim, 1024), nn.LeakyReLU(), nn.Linear(1024, 512), nn.LeakyReLU()
        )
        self.hidden = nn.Linear(512, n_bits)
        self.classifier = nn.Linear(n_bits, n_classes)

    def forward(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Relaxed codes and class logits.

        Args:
            G: backbone features of shape (B, in_dim).

        Returns:
            (u, logits): sigmoid activations of H, shape (B, K), values in (0, 1), and the
            classification logits, shape (B, C).
        """
        u = torch.sigmoid(self.hidden(self.body(G)))
        return u, self.classifier(u)


def binarize(u: np.ndarray | torch.Tensor) -> np.ndarray:
    """Binary codes of DMCH Eq. 1: ``b = (sign(sigma(f(G)) - 0.5) + 1) / 2``.

    ``sign(v) = 1`` for ``v > 0`` and -1 otherwise, so a bit is 1 exactly when its sigmoid
    activation ``u`` exceeds 0.5.

    Args:
        u: hidden-layer activations sigma(f(G)), shape (n, K).

    Returns:
        uint8 codes of shape (n, K) with values in {0, 1}.
    """
    if isinstance(u, torch.Tensor):
        u = u.detach().cpu().numpy()
    return (np.asarray(u) > 0.5).astype(np.uint8)


@dataclass(frozen=True)
class DMCHLossConfig:
    """Weights and ablation switches of DMCH Eq. 6.

    Attributes:
        margin: triplet margin m of Eq. 2 (0.2 in Sec. 4.2).
        lam: lambda, weight of L_cat (Eq. 3).
        gamma: gamma, weight of L_push (Eq. 4; 0.001 in Sec. 4.2).
        alpha: alpha, weight of L_bal (Eq. 5).
        use_tri: keep L_tri (off = DMCH-nTri).
        use_cat: keep L_cat (off = DMCH-nCat).
        use_push: keep L_push (off = DMCH-nPush).
        use_bal: keep L_bal (off = DMCH-nBal).
        batch_all: BatchAll selection; off = one random triplet per anchor, whatever its
            loss (DMCH-nBatchAll-Tri).
    """

    margin: float = 0.2
    lam: float = 1.0
    gamma: float = 0.001
    alpha: float = 1.0
    use_tri: bool = True
    use_cat: bool = True
    use_push: bool = True
    use_bal: bool = True
    batch_all: bool = True


def triplet_losses(u: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Loss of every valid triplet in a batch (DMCH Eq. 2 before the sum).

    Entry ``[a, p, n]`` is ``||f(G_a) - f(G_p)||^2 - ||f(G_a) - f(G_n)||^2 + m`` for
    ``y_a == y_p``, ``a != p`` and ``y_a != y_n``; invalid entries are ``-inf``.

    Args:
        u: relaxed codes f(G), shape (B, K).
        y: class ids, shape (B,).
        margin: m.

    Returns:
        Tensor of shape (B, B, B).
    """
    d = torch.cdist(u, u).pow(2)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool, device=u.device)
    valid = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    loss = d[:, :, None] - d[:, None, :] + margin
    return loss.masked_fill(~valid, float("-inf"))


def batch_all_triplets(u: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """BatchAll selection of DMCH Sec. 3.3: every valid triplet with a positive loss.

    Of the ``P K (K - 1) (PK - K)`` triplets of a P x K batch only those with
    ``L_tri > 0`` are kept.

    Args:
        u: relaxed codes, shape (B, K).
        y: class ids, shape (B,).
        margin: triplet margin m.

    Returns:
        Indices (a, p, n) of the selected triplets, shape (M, 3), int64.
    """
    with torch.no_grad():
        return torch.nonzero(triplet_losses(u, y, margin) > 0)


def random_triplets(y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random (positive, negative) per anchor, for the DMCH-nBatchAll-Tri ablation.

    Args:
        y: class ids, shape (B,).
        generator: torch random generator.

    Returns:
        Indices (a, p, n), shape (M, 3), for anchors that have a positive and a negative.
    """
    same = y[:, None] == y[None, :]
    same.fill_diagonal_(False)
    rows = []
    for a in range(len(y)):
        pos, neg = torch.nonzero(same[a]).flatten(), torch.nonzero(y != y[a]).flatten()
        if len(pos) and len(neg):
            p = pos[torch.randint(len(pos), (1,), generator=generator)]
            n = neg[torch.randint(len(neg), (1,), generator=generator)]
            rows.append(torch.cat([torch.tensor([a]), p, n]))
    return torch.stack(rows) if rows else torch.zeros((0, 3), dtype=torch.long)


def dmch_loss(
    u: torch.Tensor,
    logits: torch.Tensor,
    y: torch.Tensor,
    config: DMCHLossConfig,
    triplets: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Overall DMCH objective of Eq. 6 on one batch.

    Symbols: ``f(G) = u`` (relaxed codes, (B, K)), ``Y = softmax(logits)``, ``y`` labels,
    ``M = len(triplets)``. Each per-sample term of Eq. 3-5 is summed over the anchor,
    positive and negative of every selected triplet, i.e. weighted by how often the sample
    occurs in the triplets; with no triplet every sample counts once.

    * Eq. 2 ``L_tri = 1/M sum_j max(0, ||u_a - u_p||^2 - ||u_a - u_n||^2 + m)``
    * Eq. 3 ``L_cat = 1/M sum_j CE(y_a, Y_a) + CE(y_p, Y_p) + CE(y_n, Y_n)``
    * Eq. 4 ``L_push = -1/(K M) sum_j sum_{z in a,p,n} ||u_z - 0.5||^2``
    * Eq. 5 ``L_bal = 1/M sum_j sum_{z in a,p,n} (mean(u_z) - 0.5)^2``

    Args:
        u: relaxed codes, shape (B, K).
        logits: class logits, shape (B, C).
        y: class ids, shape (B,).
        config: weights and switches.
        triplets: selected (a, p, n) indices, shape (M, 3).

    Returns:
        (total loss, float value of each enabled term keyed ``tri``, ``cat``, ``push``, ``bal``).
    """
    weights = _occurrence_weights(triplets, len(y), u.device)
    terms: dict[str, torch.Tensor] = {}
    if config.use_tri:
        terms["tri"] = _triplet_term(u, triplets, config.margin)
    if config.use_cat:
        terms["cat"] = config.lam * (weights * F.cross_entropy(logits, y, reduction="none")).sum()
    if config.use_push:
        push = -((u - 0.5) ** 2).sum(dim=1) / u.shape[1]
        terms["push"] = config.gamma * (weights * push).sum()
    if config.use_bal:
        terms["bal"] = config.alpha * (weights * (u.mean(dim=1) - 0.5) ** 2).sum()
    if not terms:
        raise ValueError("config disables every DMCH loss term; enable at least one use_* flag")
    total = torch.stack(list(terms.values())).sum()
    return total, {name: float(value.detach()) for name, value in terms.items()}


def _triplet_term(u: torch.Tensor, triplets: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 2 averaged over the selected triplets (zero when none is selected)."""
    if len(triplets) == 0:
        return u.sum() * 0.0
    a, p, n = triplets.T
    d_ap = (u[a] - u[p]).pow(2).sum(dim=1)
    d_an = (u[a] - u[n]).pow(2).sum(dim=1)
    return F.relu(d_ap - d_an + margin).mean()


def _occurrence_weights(triplets: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """Occurrences of each sample in the triplets divided by M (3 / B each if M = 0)."""
    if len(triplets) == 0:
        return torch.full((batch,), 3.0 / batch, device=device)
    counts = torch.bincount(triplets.flatten(), minlength=batch).to(torch.float32)
    return counts / len(triplets)


def select_triplets(
    u: torch.Tensor, y: torch.Tensor, config: DMCHLossConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """Triplets for one batch: BatchAll (Sec. 3.3) or random (ablation), per ``config``."""
    if config.batch_all:
        return batch_all_triplets(u.detach(), y, config.margin)
    return random_triplets(y.cpu(), generator).to(u.device)


def make_optimizer(model: nn.Module, lr: float = 1e-4) -> torch.optim.Adam:
    """Adam with the settings of DMCH Sec. 4.2: lr 1e-4, betas (0.5, 0.9)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.9))


class PKSampler:
    """Batches of P classes x K images (DMCH Sec. 3.3/4.2: P = 3, K = 30).

    Classes with fewer than K images are drawn with replacement.

    Args:
        labels: class id of every training sample, shape (n,).
        p: classes per batch.
        k: images per class.
        seed: random seed.
    """

    def __init__(self, labels: np.ndarray, p: int = 3, k: int = 30, seed: int = 0) -> None:
        labels = np.asarray(labels)
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        if p < 2 or p > len(self.by_class):
            raise ValueError(f"p must be in [2, {len(self.by_class)}] (classes present); got {p}")
        if k < 2:
            raise ValueError(f"k must be >= 2 to form positive pairs; got {k}")
        self.p, self.k = p, k
        self.n_batches = max(1, len(labels) // (p * k))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Batches per epoch: n // (P K)."""
        return self.n_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield index arrays of length P K, grouped by class."""
        for _ in range(self.n_batches):
            classes = self.rng.choice(len(self.by_class), size=self.p, replace=False)
            yield np.concatenate([self._draw(self.by_class[c]) for c in classes])

    def _draw(self, members: np.ndarray) -> np.ndarray:
        """K members of one class, with replacement only when the class is too small."""
        return self.rng.choice(members, size=self.k, replace=len(members) < self.k)


def hamming_distances(codes_q: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """Hamming distances between {0, 1} codes.

    Args:
        codes_q: query codes, shape (nq, K).
        codes_b: database codes, shape (nb, K).

    Returns:
        D of shape (nq, nb), int32.
    """
    q = codes_q.astype(np.int32)
    b = codes_b.astype(np.int32)
    return (q.sum(1)[:, None] + b.sum(1)[None, :] - 2 * q @ b.T).astype(np.int32)


def coarse_to_fine_distance(
    codes_q: np.ndarray, u_q: np.ndarray, codes_c: np.ndarray, u_c: np.ndarray
) -> np.ndarray:
    """Coarse-to-fine distance of DMCH Eq. 7 between each query and its candidates.

    ``D(h_i, h_q) = sum_j max(x_j, (1 - x_j) |u_ij - u_qj| / [K - sum_j x_j]_+)`` with
    ``x_j = h_ij XOR h_qj``: every differing bit costs 1 and the agreeing bits add the mean
    absolute gap of their pre-quantization values, which is below 1, so the Hamming distance
    dominates and the real values only order items at equal Hamming distance.

    Args:
        codes_q: query codes h_q, shape (nq, K).
        u_q: query pre-quantization values u_q (sigmoid outputs), shape (nq, K).
        codes_c: candidate codes h_i per query, shape (nq, M, K).
        u_c: candidate pre-quantization values u_i, shape (nq, M, K).

    Returns:
        Distances of shape (nq, M).
    """
    x = codes_c != codes_q[:, None, :]
    hamming = x.sum(axis=2)
    agree = np.maximum(codes_q.shape[1] - hamming, 1)
    gap = np.where(x, 0.0, np.abs(u_c - u_q[:, None, :])).sum(axis=2)
    return hamming + gap / agree


def coarse_to_fine_rank(
    codes_q: np.ndarray,
    u_q: np.ndarray,
    codes_b: np.ndarray,
    u_b: np.ndarray,
    top_m: int,
    fine: str = "eq7",
) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage ranking of DMCH Sec. 3.5 by brute force (the index version is in serving).

    Coarse: the ``top_m`` nearest database codes in Hamming distance. Fine: those M are
    re-ordered by Eq. 7 (``fine="eq7"``) or by the Euclidean distance of the
    pre-quantization values (``fine="euclidean"``, the DMCH+ rows of Sec. 4.3.2).

    Args:
        codes_q: query codes, shape (nq, K).
        u_q: query pre-quantization values, shape (nq, K).
        codes_b: database codes, shape (nb, K).
        u_b: database pre-quantization values, shape (nb, K).
        top_m: M, candidates kept by the coarse stage.
        fine: ``"eq7"`` or ``"euclidean"``.

    Returns:
        (D, I): fine distances and database indices of the re-ranked top M, shape (nq, M).
    """
    if not 1 <= top_m <= len(codes_b):
        raise ValueError(f"top_m must be in [1, {len(codes_b)}]; got {top_m}")
    coarse = np.argsort(hamming_distances(codes_q, codes_b), axis=1, kind="stable")[:, :top_m]
    D = fine_distance(codes_q, u_q, codes_b[coarse], u_b[coarse], fine)
    order = np.argsort(D, axis=1, kind="stable")
    return np.take_along_axis(D, order, 1), np.take_along_axis(coarse, order, 1)


def fine_distance(
    codes_q: np.ndarray, u_q: np.ndarray, codes_c: np.ndarray, u_c: np.ndarray, fine: str
) -> np.ndarray:
    """Fine-stage distance of candidates (nq, M, K) to their queries (nq, K)."""
    if fine == "eq7":
        return coarse_to_fine_distance(codes_q, u_q, codes_c, u_c)
    if fine == "euclidean":
        return np.linalg.norm(u_c - u_q[:, None, :], axis=2)
    raise ValueError(f"fine must be 'eq7' or 'euclidean'; got {fine!r}")
