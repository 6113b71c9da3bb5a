"""Shallow hashing baselines on fixed features: LSH and ITQ (numpy only).

Both are the reference rows of DUWH Table 1 (``../shared/papers/duwh-deep-unsupervised-
weighted-hashing.txt``, "Datasets and Settings": LSH, Gionis et al. 1999; ITQ, Gong et al.
2012), trained on the same backbone features as the deep models.

The interface matches the deep hashers: ``fit(xt)`` returns the fitted object and
``encode(x)`` returns codes of shape (n, n_bits) with values in {0, 1} (uint8).
"""

from __future__ import annotations

import numpy as np


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as a float64 matrix or raise naming the argument."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d); got shape {x.shape}")
    return x


class LSH:
    """Sign random projections: ``b = [W^T (x - mean) > 0]``, ``W ~ N(0, I)``.

    Args:
        n_bits: code length K.
        seed: random seed of the projection.
    """

    def __init__(self, n_bits: int, seed: int = 0) -> None:
        if n_bits < 1:
            raise ValueError(f"n_bits must be >= 1; got {n_bits}")
        self.n_bits = n_bits
        self.seed = seed
        self.mean_: np.ndarray | None = None
        self.W_: np.ndarray | None = None

    def fit(self, xt: np.ndarray) -> LSH:
        """Store the training mean and draw the projection.

        Args:
            xt: training features of shape (nt, d).

        Returns:
            self.
        """
        xt = _as_matrix(xt, "xt")
        rng = np.random.default_rng(self.seed)
        self.mean_ = xt.mean(axis=0)
        self.W_ = rng.standard_normal((xt.shape[1], self.n_bits))
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Binary codes of shape (n, n_bits), values in {0, 1}."""
        if self.W_ is None or self.mean_ is None:
            raise RuntimeError("LSH.encode called before fit(xt)")
        x = _as_matrix(x, "x")
        return ((x - self.mean_) @ self.W_ > 0).astype(np.uint8)


class ITQ:
    """Iterative quantization (Gong et al. 2012): PCA to K dims, then a learnt rotation R.

    Alternates ``B = sgn(V R)`` and the orthogonal Procrustes solution ``R = U W^T`` where
    ``V^T B = U S W^T`` (V: centred PCA projections), minimising ``||B - V R||_F^2``.

    Args:
        n_bits: code length K; at most the feature dimension.
        n_iter: number of alternating iterations (50 in the ITQ paper).
        seed: seed of the random orthogonal initial rotation.
    """

    def __init__(self, n_bits: int, n_iter: int = 50, seed: int = 0) -> None:
        if n_bits < 1:
            raise ValueError(f"n_bits must be >= 1; got {n_bits}")
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.seed = seed
        self.mean_: np.ndarray | None = None
        self.P_: np.ndarray | None = None
        self.R_: np.ndarray | None = None

    def fit(self, xt: np.ndarray) -> ITQ:
        """Learn the PCA projection and the rotation on training features.

        Args:
            xt: training features of shape (nt, d) with d >= n_bits.

        Returns:
            self.
        """
        xt = _as_matrix(xt, "xt")
        if xt.shape[1] < self.n_bits:
            raise ValueError(f"ITQ needs d >= n_bits; got d={xt.shape[1]}, n_bits={self.n_bits}")
        self.mean_ = xt.mean(axis=0)
        centred = xt - self.mean_
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        self.P_ = vt[: self.n_bits].T
        self.R_ = self._rotation(centred @ self.P_)
        return self

    def _rotation(self, V: np.ndarray) -> np.ndarray:
        """Alternating minimisation of ``||sgn(VR) - VR||_F`` over orthogonal R."""
        rng = np.random.default_rng(self.seed)
        R, _ = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))
        for _ in range(self.n_iter):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            U, _, Wt = np.linalg.svd(V.T @ B)
            R = U @ Wt
        return R

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Binary codes of shape (n, n_bits), values in {0, 1}."""
        if self.P_ is None or self.R_ is None or self.mean_ is None:
            raise RuntimeError("ITQ.encode called before fit(xt)")
        x = _as_matrix(x, "x")
        return ((x - self.mean_) @ self.P_ @ self.R_ >= 0).astype(np.uint8)
