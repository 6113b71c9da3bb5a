"""Chip similarity by Hungarian matching of segment embeddings; exact and fast all-pairs.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, sections 2.7-2.8. Two chips'
graphs are compared as a bipartite matching: the Hungarian algorithm pairs their nodes one to
one so that the summed cosine similarity is largest, and the chip similarity is the mean
cosine of the matched pairs, s(a, b) = (1/min(n, m)) max_pi sum_i cos(e_a,i, e_b,pi(i)). The
all-pairs matrix feeds UMAP (precomputed metric) for the chip view. The paper's step takes
20 minutes for the 194,481 pairs of one tile on a GPU (Table 7).

:func:`similarity_matrix_exact` solves every pair. :func:`similarity_matrix_fast` gives the
same chip neighbourhoods with far fewer assignments:

1. *Cheap embedding.* For unit vectors, |a - b|^2 = 2 - 2 cos(a, b), so the matched mean
   cosine is 1 - W/2 with W the squared 2-Wasserstein distance between the two node clouds.
   A sliced-Wasserstein sketch (node embeddings projected on P shared random directions,
   each projection's quantile function sampled at Q points) turns each chip into one vector
   whose squared Euclidean distances estimate W; ``s~ = 1 - D * |q_a - q_b|^2 / (2 P Q)``.
2. *Candidates.* Each chip's ``k + extra`` best chips by s~ are solved exactly.
3. *Exact only where it can change a neighbourhood.* On the pairs solved so far a line
   s ~ alpha + beta s~ is fitted and its largest residual delta taken as the estimate's
   error bar. A pair (i, j) not yet solved is solved when its estimate plus delta reaches
   the k-th best exact similarity of chip i or of chip j: only then could it enter either
   chip's k nearest. Repeat until no such pair is left.
4. Pairs never solved keep their (fitted) estimate, which lies below both chips' k-th exact
   neighbour, so every chip's k-NN set and its similarities to those neighbours are the
   exact ones whenever the error bar holds; :func:`knn_agreement` measures it.

Assignments run in batches (one matrix product per chip against all its partners) on a
thread pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


def normalise_rows(E: np.ndarray) -> np.ndarray:
    """Rows of ``E`` (n, D) scaled to unit length (zero rows stay zero), float64."""
    E = np.asarray(E, np.float64)
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)  # type: ignore[no-any-return]


def matched_similarity(Ua: np.ndarray, Ub: np.ndarray) -> float:
    """Mean cosine of the Hungarian matching of unit-row node embeddings (n, D) and (m, D)."""
    from scipy.optimize import linear_sum_assignment

    if not len(Ua) or not len(Ub):
        raise ValueError("cannot match a chip without segments")
    S = Ua @ Ub.T
    rows, cols = linear_sum_assignment(S, maximize=True)
    return float(S[rows, cols].mean())


def chip_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Section 2.8: mean cosine of the Hungarian-matched node embeddings of two chips."""
    return matched_similarity(normalise_rows(a), normalise_rows(b))


def _solve_pairs(
    units: Sequence[np.ndarray], pairs: np.ndarray, workers: int,
    on_done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Exact similarities of ``pairs`` (P, 2), batched per first chip, on ``workers`` threads."""
    values = np.empty(len(pairs), np.float64)
    if not len(pairs):
        return values
    order = np.argsort(pairs[:, 0], kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(pairs[order, 0])) + 1)

    def run(group: np.ndarray) -> int:
        from scipy.optimize import linear_sum_assignment

        i = int(pairs[group[0], 0])
        js = pairs[group, 1]
        sizes = [len(units[j]) for j in js]
        block = units[i] @ np.concatenate([units[j] for j in js]).T
        start = 0
        for g, size in zip(group, sizes, strict=True):
            S = block[:, start : start + size]
            rows, cols = linear_sum_assignment(S, maximize=True)
            values[g] = S[rows, cols].mean()
            start += size
        return len(group)

    if workers <= 1:
        for group in groups:
            done = run(group)
            if on_done is not None:
                on_done(done)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for done in pool.map(run, groups):
                if on_done is not None:
                    on_done(done)
    return values


def similarity_matrix_exact(
    embeddings: Sequence[np.ndarray], workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """All-pairs chip similarity (N, N) float64 by Hungarian matching; diagonal 1."""
    units = [normalise_rows(e) for e in embeddings]
    n = len(units)
    iu = np.triu_indices(n, 1)
    pairs = np.stack(iu, axis=1)
    S = np.eye(n)
    S[iu] = _solve_pairs(units, pairs, workers, on_done)
    S.T[iu] = S[iu]
    return S


def sliced_sketch(
    embeddings: Sequence[np.ndarray], n_projections: int = 64, n_quantiles: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """Sliced-Wasserstein sketch (N, P*Q) of each chip's unit node embeddings (step 1)."""
    dim = embeddings[0].shape[1]
    theta = np.random.default_rng(seed).normal(size=(dim, n_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    levels = (np.arange(n_quantiles) + 0.5) / n_quantiles
    out = np.empty((len(embeddings), n_projections * n_quantiles), np.float64)
    for i, e in enumerate(embeddings):
        proj = np.sort(normalise_rows(e) @ theta, axis=0)  # (n, P)
        out[i] = np.quantile(proj, levels, axis=0, method="linear").T.ravel()
    return out


def sketch_similarity(sketch: np.ndarray, dim: int) -> np.ndarray:
    """Estimated chip similarity s~ (N, N) from sliced sketches (step 1)."""
    sq = (sketch * sketch).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * sketch @ sketch.T, 0.0)
    return 1.0 - dim * d2 / (2.0 * sketch.shape[1])  # type: ignore[no-any-return]


@dataclass
class FastSimilarity:
    """The fast path's result.

    Attributes:
        S: (N, N) similarity, exact where ``solved``, the fitted estimate elsewhere.
        solved: (N, N) bool, pairs solved by the Hungarian algorithm.
        n_exact: assignments solved (unordered pairs).
        n_pairs: unordered pairs in all.
        rounds: refinement rounds of step 3.
        error_bar: delta, the largest residual of the fitted estimate on solved pairs.
        seconds: wall time.
    """

    S: np.ndarray
    solved: np.ndarray
    n_exact: int
    n_pairs: int
    rounds: int
    error_bar: float
    seconds: float


def similarity_matrix_fast(
    embeddings: Sequence[np.ndarray],
    k: int = 15,
    extra: int = 5,
    workers: int = 2,
    n_projections: int = 64,
    n_quantiles: int = 32,
    max_rounds: int = 20,
    seed: int = 0,
) -> FastSimilarity:
    """All-pairs chip similarity with exact values where they decide a k-NN set (steps 1-4).

    Args:
        embeddings: per chip, its node embeddings (n_i, D).
        k: neighbourhood size that must come out as the exact one (UMAP's ``n_neighbors``).
        extra: candidates beyond ``k`` solved up front per chip.
        workers: threads solving assignments.
        n_projections: P, sliced directions.
        n_quantiles: Q, quantiles per direction.
        max_rounds: bound on refinement rounds.
        seed: seeds the projection directions.
    """
    start = time.perf_counter()
    n = len(embeddings)
    units = [normalise_rows(e) for e in embeddings]
    dim = units[0].shape[1]
    est = sketch_similarity(sliced_sketch(units, n_projections, n_quantiles, seed), dim)
    np.fill_diagonal(est, -np.inf)
    solved = np.eye(n, dtype=bool)
    S = np.eye(n)
    k = min(k, n - 1)
    top = np.argsort(-est, axis=1)[:, : min(k + extra, n - 1)]
    want = np.zeros((n, n), bool)
    want[np.repeat(np.arange(n), top.shape[1]), top.ravel()] = True
    rounds, delta = 0, 0.0
    fitted = est
    while rounds < max_rounds:
        want |= want.T
        want &= ~solved
        pairs = np.argwhere(np.triu(want, 1))
        if not len(pairs):
            break
        rounds += 1
        values = _solve_pairs(units, pairs, workers)
        S[pairs[:, 0], pairs[:, 1]] = S[pairs[:, 1], pairs[:, 0]] = values
        solved[pairs[:, 0], pairs[:, 1]] = solved[pairs[:, 1], pairs[:, 0]] = True
        off = solved & ~np.eye(n, dtype=bool)
        beta, alpha = np.polyfit(est[off], S[off], 1)
        fitted = alpha + beta * est
        delta = float(np.max(S[off] - fitted[off]))
        kth = np.sort(np.where(off, S, -np.inf), axis=1)[:, -k]
        want = (fitted + delta >= kth[:, None]) | (fitted + delta >= kth[None, :])
    unsolved = ~solved
    S[unsolved] = np.clip(fitted[unsolved], -1.0, 1.0)
    S = np.minimum(S, S.T)
    return FastSimilarity(S, solved, int(np.triu(solved, 1).sum()), n * (n - 1) // 2, rounds,
                          delta, time.perf_counter() - start)


def knn_sets(S: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` most similar other rows of a similarity matrix (N, k)."""
    T = np.array(S, np.float64, copy=True)
    np.fill_diagonal(T, -np.inf)
    return np.argsort(-T, axis=1, kind="stable")[:, :k]


def knn_agreement(fast: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean share of each chip's exact k nearest chips found among its fast k nearest."""
    a, b = knn_sets(fast, k), knn_sets(exact, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))
