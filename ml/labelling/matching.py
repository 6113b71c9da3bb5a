"""Chip similarity by Hungarian matching of segment embeddings; exact and fast all-pairs.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, sections 2.7-2.8. Two chips'
graphs are compared as a bipartite matching: the Hungarian algorithm pairs their nodes one to
one so that the summed cosine similarity is largest, and the chip similarity is the mean
cosine of the matched pairs, s(a, b) = (1/min(n, m)) max_pi sum_i cos(e_a,i, e_b,pi(i)). The
all-pairs matrix feeds UMAP (precomputed metric) for the chip view. The paper's step takes
20 minutes for the 194,481 pairs of one tile on a GPU (Table 7).

:func:`similarity_matrix_exact` solves every pair. :func:`similarity_matrix_fast` keeps every
chip's k nearest chips (what UMAP, and so the user, sees) while solving few full
assignments. For unit vectors |a - b|^2 = 2 - 2 cos(a, b), so the matched mean cosine is
1 - W/2 with W the squared 2-Wasserstein distance between the two node clouds; a
sliced-Wasserstein sketch estimates it for every pair (optionally refined by a Hungarian
matching of a few dozen k-means "slots" per chip for each chip's best candidates), and the
full assignment is solved only for pairs whose calibrated estimate lies near a chip's k-th
neighbour, where it could change the neighbourhood, within a budget of assignments.
:func:`knn_agreement` measures how far the k-NN graph agrees with the exact all-pairs one.

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


def coarse_nodes(U: np.ndarray, slots: int = 24, clusters: int = 12, iters: int = 8,
                 seed: int = 0) -> np.ndarray:
    """``slots`` unit vectors standing for a chip's unit node embeddings ``U`` (n, D).

    Spherical k-means with ``clusters`` centres; each centre fills a number of slots in
    proportion to its members (largest remainders), so two chips' slot sets are equal-mass
    samples of their node distributions and their Hungarian matching approximates the full
    one (step 2 of :func:`similarity_matrix_fast`).
    """
    rng = np.random.default_rng(seed)
    K = min(clusters, len(U))
    C = U[rng.choice(len(U), K, replace=False)]
    for _ in range(iters):
        assign = np.argmax(U @ C.T, axis=1)
        sums = np.zeros_like(C)
        np.add.at(sums, assign, U)
        empty = ~sums.any(axis=1)
        sums[empty] = C[empty]
        C = normalise_rows(sums)
    mass = np.bincount(np.argmax(U @ C.T, axis=1), minlength=K) * slots / len(U)
    count = np.floor(mass).astype(np.int64)
    count[np.argsort(-(mass - count))[: slots - count.sum()]] += 1
    return np.repeat(C, count, axis=0)  # type: ignore[no-any-return]


@dataclass
class FastSimilarity:
    """The fast path's result.

    Attributes:
        S: (N, N) similarity, exact where ``solved``, the calibrated estimate elsewhere.
        solved: (N, N) bool, pairs solved by the full Hungarian algorithm.
        n_exact: full assignments solved (unordered pairs).
        n_coarse: coarse (slot-level) assignments solved.
        n_pairs: unordered pairs in all.
        rounds: refinement rounds of step 3.
        error_bar: the calibrated estimate's residual deviation on solved pairs.
        seconds: wall time.
    """

    S: np.ndarray
    solved: np.ndarray
    n_exact: int
    n_coarse: int
    n_pairs: int
    rounds: int
    error_bar: float
    seconds: float


def similarity_matrix_fast(
    embeddings: Sequence[np.ndarray],
    k: int = 15,
    extra: int = 15,
    workers: int = 2,
    margin: float = 2.5,
    max_exact: int | None = None,
    slots: int = 0,
    n_projections: int = 256,
    max_rounds: int = 4,
    seed: int = 0,
) -> FastSimilarity:
    """All-pairs chip similarity whose k-NN sets match the exact Hungarian ones.

    1. A sliced-Wasserstein estimate s~ of every pair (cheap, vectorised).
    2. The ``k + extra`` best candidates of each chip by s~ get a coarse estimate c: the
       Hungarian matching of the two chips' :func:`coarse_nodes` (a few dozen slots instead
       of hundreds of nodes).
    3. Exact assignment only where it can change a neighbourhood: a line s = a + b c is
       fitted on the pairs solved so far (first round: the identity) with residual deviation
       sigma; a candidate pair is solved exactly when its calibrated estimate lies within
       ``margin`` sigma of chip i's or chip j's k-th best value, most ambiguous first, at
       most ``max_exact`` in all. Repeat up to ``max_rounds`` times.
    4. The matrix holds the exact value where solved, the calibrated coarse estimate for the
       other candidates, and for every other pair the calibrated sliced estimate capped
       below both chips' k-th best value.

    Args:
        embeddings: per chip, its node embeddings (n_i, D).
        k: neighbourhood size to keep (UMAP's ``n_neighbors``).
        extra: candidates beyond ``k`` per chip that get the coarse estimate.
        workers: threads solving assignments.
        margin: half-width, in residual deviations, of the band around the k-th value.
        max_exact: bound on full assignments (None: no bound).
        slots: coarse nodes per chip for step 2; 0 skips step 2 and ranks the candidates by
            the sliced estimate (on the OSCD chips it ranked them better than 24-64 slots).
        n_projections: directions of the sliced sketch.
        max_rounds: refinement rounds.
        seed: seeds the projections and the k-means.
    """
    start = time.perf_counter()
    n = len(embeddings)
    units = [normalise_rows(e) for e in embeddings]
    dim = units[0].shape[1]
    est = sketch_similarity(sliced_sketch(units, n_projections, 32, seed), dim)
    np.fill_diagonal(est, -np.inf)
    k = min(k, n - 1)
    top = np.argsort(-est, axis=1)[:, : min(k + extra, n - 1)]
    cand = np.zeros((n, n), bool)
    cand[np.repeat(np.arange(n), top.shape[1]), top.ravel()] = True
    cand |= cand.T
    pairs = np.argwhere(np.triu(cand, 1))
    C = np.where(cand, est, -np.inf)
    if slots:
        coarse_units = [coarse_nodes(u, slots, seed=seed) for u in units]
        C[pairs[:, 0], pairs[:, 1]] = C[pairs[:, 1], pairs[:, 0]] = _solve_pairs(
            coarse_units, pairs, workers)
    solved = np.zeros((n, n), bool)
    S = np.full((n, n), -np.inf)
    alpha, beta, sigma = 0.0, 1.0, max(float(np.std(C[cand])) * 0.1, 1e-3)
    rounds, budget = 0, np.inf if max_exact is None else max_exact
    while rounds < max_rounds and budget > 0:
        cal = np.where(solved, S, alpha + beta * C)
        cal[~cand] = -np.inf
        kth = np.sort(cal, axis=1)[:, -k]
        gap = np.minimum(np.abs(cal - kth[:, None]), np.abs(cal - kth[None, :]))
        todo = np.triu(cand & ~solved & (gap <= margin * sigma), 1)
        pairs = np.argwhere(todo)
        if not len(pairs):
            break
        rounds += 1
        pairs = pairs[np.argsort(gap[todo], kind="stable")][: int(min(budget, len(pairs)))]
        budget -= len(pairs)
        values = _solve_pairs(units, pairs, workers)
        S[pairs[:, 0], pairs[:, 1]] = S[pairs[:, 1], pairs[:, 0]] = values
        solved[pairs[:, 0], pairs[:, 1]] = solved[pairs[:, 1], pairs[:, 0]] = True
        if solved.sum() >= 8:
            beta, alpha = np.polyfit(C[solved], S[solved], 1)
            sigma = max(float(np.std(S[solved] - (alpha + beta * C[solved]))), 1e-4)
    out = np.where(solved, S, alpha + beta * C)
    kth = np.sort(np.where(cand, out, -np.inf), axis=1)[:, -k]
    lo = np.minimum(kth[:, None], kth[None, :])
    if cand.any():  # sliced estimate calibrated on the candidates, capped below both k-th values
        b2, a2 = np.polyfit(est[cand], out[cand], 1)
    else:
        a2, b2 = 0.0, 1.0
    rest = ~cand
    out[rest] = np.minimum(a2 + b2 * est[rest], lo[rest] - 1e-6)
    np.fill_diagonal(out, 1.0)
    return FastSimilarity(np.clip(out, -1.0, 1.0), solved | np.eye(n, dtype=bool),
                          int(np.triu(solved, 1).sum()), len(pairs) if slots else 0,
                          n * (n - 1) // 2, rounds, sigma, time.perf_counter() - start)


def knn_sets(S: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` most similar other rows of a similarity matrix (N, k)."""
    T = np.array(S, np.float64, copy=True)
    np.fill_diagonal(T, -np.inf)
    return np.argsort(-T, axis=1, kind="stable")[:, :k]


def knn_agreement(
    fast: np.ndarray, exact: np.ndarray, k: int = 10, rows: np.ndarray | None = None
) -> float:
    """Mean share of each chip's exact k nearest chips found among its fast k nearest.

    Args:
        fast: (N, N) similarity of the fast path.
        exact: (N, N) exact similarity, or (Q, N) exact rows of the chips ``rows``.
        k: neighbourhood size.
        rows: the chips whose rows ``exact`` holds (None: all, ``exact`` is (N, N)).
    """
    rows = np.arange(len(fast)) if rows is None else np.asarray(rows)
    E = np.array(exact, np.float64, copy=True)
    E[np.arange(len(rows)), rows] = -np.inf
    a = knn_sets(fast, k)[rows]
    b = np.argsort(-E, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))
