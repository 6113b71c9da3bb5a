"""HIR stage 2 and LCBIR: ranking by the weighted Manhattan distance of land-cover statistics.

Specification: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``, section
II.A, Eq. 1 and Fig. 1. Stage 1 (CBIR) shortlists the K archive images nearest to the query
in feature space; stage 2 re-orders the shortlist by

``WMD(X, Y) = sum_{i=1..n} w_i |x_i - y_i|``   (Eq. 1)

between the query's land-cover class distribution ``X`` and each candidate's ``Y`` (``n``
classes, weights ``w``), and returns the k < K nearest. LCBIR ranks the whole archive by
Eq. 1 alone. Vocabulary as in faiss: ``xq`` / ``xb`` query and archive vectors, rankings
``I`` of archive indices.
"""

from __future__ import annotations

import numpy as np


def weighted_manhattan(x: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Eq. 1: ``WMD(X, Y) = sum_i w_i |x_i - y_i|`` over the last axis.

    Args:
        x: the query's class distribution X, shape (..., n), broadcast against ``Y``.
        Y: candidate distributions, shape (..., n).
        w: class weights w, shape (n,); None means all ones (plain Manhattan distance).

    Returns:
        Distances with the broadcast shape of ``x`` and ``Y`` minus the last axis.

    Raises:
        ValueError: ``w`` does not have one non-negative weight per class.
    """
    diff = np.abs(np.asarray(x, np.float32) - np.asarray(Y, np.float32))
    if w is None:
        return diff.sum(axis=-1)
    w = np.asarray(w, np.float32)
    if w.shape != (diff.shape[-1],) or (w < 0).any():
        raise ValueError(
            f"w must hold {diff.shape[-1]} non-negative class weights; got shape {w.shape}"
        )
    return diff @ w


def class_weights(names: list[str], weights: dict[str, float]) -> np.ndarray:
    """The weight vector w of Eq. 1: 1 for every class, ``weights[name]`` where given.

    Raises:
        ValueError: a weight names no class, or is negative.
    """
    w = np.ones(len(names), np.float32)
    for name, value in weights.items():
        if name not in names:
            raise ValueError(f"class weight {name!r}: not a land-cover class; classes: {names}")
        if value < 0:
            raise ValueError(f"class weight {name}={value}: weights must be >= 0")
        w[names.index(name)] = value
    return w


def rerank(
    I: np.ndarray, sq: np.ndarray, sb: np.ndarray, w: np.ndarray | None, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2 of HIR: re-order each query's stage-1 shortlist by Eq. 1, keep the top k.

    Ties keep the stage-1 order (stable sort). Entries of ``I`` equal to -1 (a shortlist
    shorter than K) stay at the end.

    Args:
        I: stage-1 shortlists, archive indices (nq, K), nearest first.
        sq: the queries' class distributions X, (nq, n).
        sb: the archive's class distributions, (nb, n).
        w: class weights (n,), None for ones.
        k: results kept (k <= K); None keeps all K.

    Returns:
        ``D`` (nq, k) Eq. 1 distances (inf for -1 entries) and ``I`` (nq, k) re-ranked.
    """
    D = weighted_manhattan(sq[:, None, :], sb[np.maximum(I, 0)], w)
    D = np.where(I >= 0, D, np.inf)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)


def lcbir_rank(sq: np.ndarray, sb: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """LCBIR: Eq. 1 distances of every query to every archive image, (nq, nb)."""
    return np.stack([weighted_manhattan(x[None, :], sb, w) for x in sq])
