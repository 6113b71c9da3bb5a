"""Fuzzy C-means, the soft pixel targets of the labelling pipeline.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.2 (after Bezdek et
al., 1984): every pixel x_i (all spectral bands) gets a degree of membership u_ij to each of
C clusters; the clustering is fitted on a uniform pixel subsample and then applied to the
full-resolution image. The paper does not state the fuzzifier; m = 2, Bezdek's usual value,
is the default. Symbols: x_i -> ``x[i]`` (N, D), c_j -> ``centers[j]`` (C, D), u_ij ->
``U[i, j]`` (N, C), m -> ``m``.

The two alternating updates (Bezdek 1984, Eqs. 11a-b)::

    u_ij = 1 / sum_k (|x_i - c_j| / |x_i - c_k|)^(2 / (m - 1))
    c_j  = sum_i u_ij^m x_i / sum_i u_ij^m
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAPER_CLUSTERS = (2, 8, 18)
EPS = 1e-12


def squared_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """|x_i - c_j|^2 of points ``x`` (N, D) to ``centers`` (C, D), as (N, C) float64."""
    x = np.asarray(x, np.float64)
    centers = np.asarray(centers, np.float64)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def fcm_memberships(x: np.ndarray, centers: np.ndarray, m: float = 2.0) -> np.ndarray:
    """Memberships u_ij (Bezdek Eq. 11a) of ``x`` (N, D) to ``centers`` (C, D).

    Written with squared distances: u_ij = d_ij^(-p) / sum_k d_ik^(-p), p = 1/(m-1),
    d = |x - c|^2, which equals the ratio form. A point on a centre belongs to it fully.

    Returns:
        (N, C) float64, each row summing to 1.
    """
    if m <= 1.0:
        raise ValueError(f"fuzzifier m must be > 1, got {m}")
    d2 = squared_distances(x, centers)
    p = 1.0 / (m - 1.0)
    # Divide by the row minimum first so the powers stay finite.
    scaled = np.maximum(d2, EPS) / np.maximum(d2.min(1, keepdims=True), EPS)
    inv = scaled ** (-p)
    return inv / inv.sum(1, keepdims=True)  # type: ignore[no-any-return]


def fcm_centers(x: np.ndarray, U: np.ndarray, m: float = 2.0) -> np.ndarray:
    """Centres c_j (Bezdek Eq. 11b) of ``x`` (N, D) weighted by u_ij^m; returns (C, D)."""
    W = np.asarray(U, np.float64) ** m
    return (W.T @ np.asarray(x, np.float64)) / np.maximum(W.sum(0)[:, None], EPS)  # type: ignore[no-any-return]


def fcm_objective(x: np.ndarray, centers: np.ndarray, m: float = 2.0) -> float:
    """J_m = sum_ij u_ij^m |x_i - c_j|^2 at the optimal memberships of ``centers``."""
    U = fcm_memberships(x, centers, m)
    return float(((U**m) * squared_distances(x, centers)).sum())


@dataclass
class FuzzyCMeans:
    """Fuzzy C-means fitted on a seeded uniform subsample, applied to any number of pixels.

    Attributes:
        n_clusters: C (the paper tries 2, 8 and 18; 8 is its choice).
        m: fuzzifier (> 1).
        max_iter: alternating updates at most.
        tol: stop when no centre moves more than this (in feature units).
        max_samples: pixels in the fitting subsample (a seeded uniform draw).
        seed: seeds the subsample and the initial memberships.
        centers: (C, D) float64 after :meth:`fit`.
        n_iter: updates the fit took.
    """

    n_clusters: int = 8
    m: float = 2.0
    max_iter: int = 150
    tol: float = 1e-5
    max_samples: int = 50_000
    seed: int = 0
    centers: np.ndarray | None = None
    n_iter: int = 0

    def fit(self, x: np.ndarray) -> FuzzyCMeans:
        """Fit the centres on a uniform subsample of ``x`` (N, D) pixels (section 2.2).

        Raises:
            ValueError: fewer pixels than clusters, or a non-finite value.
        """
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or len(x) < self.n_clusters:
            raise ValueError(
                f"FCM needs an (N, D) array with N >= n_clusters={self.n_clusters}, "
                f"got shape {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError("FCM input holds NaN or infinite values")
        rng = np.random.default_rng(self.seed)
        if len(x) > self.max_samples:
            x = x[np.sort(rng.choice(len(x), self.max_samples, replace=False))]
        U = rng.dirichlet(np.ones(self.n_clusters), size=len(x))
        centers = fcm_centers(x, U, self.m)
        it = 0
        while it < self.max_iter:
            it += 1
            U = fcm_memberships(x, centers, self.m)
            new = fcm_centers(x, U, self.m)
            shift = float(np.abs(new - centers).max())
            centers = new
            if shift < self.tol:
                break
        # Order the clusters by their first feature so refits give comparable columns.
        self.centers = centers[np.argsort(centers[:, 0], kind="stable")]
        self.n_iter = it
        return self

    def predict(self, x: np.ndarray, batch_size: int = 262_144) -> np.ndarray:
        """Memberships (N, C) float32 of ``x`` (N, D), in batches (full resolution).

        Raises:
            ValueError: called before :meth:`fit`, or ``x`` has another width.
        """
        if self.centers is None:
            raise ValueError("FuzzyCMeans.predict called before fit")
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.centers.shape[1]:
            raise ValueError(
                f"expected (N, {self.centers.shape[1]}) pixels, got shape {x.shape}"
            )
        out = np.empty((len(x), self.n_clusters), np.float32)
        for start in range(0, len(x), batch_size):
            out[start : start + batch_size] = fcm_memberships(
                x[start : start + batch_size], self.centers, self.m
            )
        return out

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """Memberships (C, H, W) float32 of one standardized image (D, H, W)."""
        d, h, w = image.shape
        return self.predict(image.reshape(d, -1).T).T.reshape(self.n_clusters, h, w)
