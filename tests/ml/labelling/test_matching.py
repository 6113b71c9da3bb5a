import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment

from ml.labelling.matching import (
    assignment_mean,
    chip_similarity,
    knn_agreement,
    normalise_rows,
    quantise,
    similarity_matrix_exact,
    similarity_matrix_fast,
    transport_lower_bound,
)


def test_hungarian_similarity_matches_the_best_permutation() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    ua, ub = normalise_rows(a), normalise_rows(b)
    best = max(np.mean([ua[i] @ ub[p[i]] for i in range(5)])
               for p in itertools.permutations(range(5)))
    assert abs(chip_similarity(a, b) - best) < 1e-12
    assert abs(chip_similarity(a, a[rng.permutation(5)]) - 1.0) < 1e-12  # order-invariant
    assert chip_similarity(a, np.concatenate([b, a])) > 0.999  # a is inside the larger chip


def test_the_transport_solution_is_the_hungarian_optimum_for_rectangular_matrices() -> None:
    rng = np.random.default_rng(1)
    for n, m in ((40, 40), (30, 47), (52, 35)):
        S = rng.random((n, m)) ** 3  # skewed, with near-ties, like the chips' cosines
        rows, cols = linear_sum_assignment(S, maximize=True)
        assert abs(assignment_mean(S) - S[rows, cols].mean()) < 1e-12


def test_cluster_transport_is_a_lower_bound_that_tightens_with_more_clusters() -> None:
    chips = [normalise_rows(c) for c in clustered_chips(12, 3)]
    exact = similarity_matrix_exact(chips)
    gaps = {}
    for K in (4, 16, len(max(chips, key=len))):
        q = [quantise(u, K) for u in chips]
        bound = np.array([[transport_lower_bound(q[i], q[j]) for j in range(12)]
                          for i in range(12)])
        off = ~np.eye(12, dtype=bool)
        assert (bound[off] <= exact[off] + 1e-12).all(), "a bound, never above the optimum"
        gaps[K] = float((exact - bound)[off].mean())
    assert gaps[4] > gaps[16] > 0
    assert gaps[len(max(chips, key=len))] < 1e-9  # one node per cluster: the exact value


def clustered_chips(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(6, 16))
    chips = []
    for _ in range(n):
        mix = rng.dirichlet(np.full(6, 0.4))
        size = int(rng.integers(30, 45))
        which = rng.choice(6, size=size, p=mix)
        chips.append(protos[which] + 0.6 * rng.normal(size=(size, 16)))
    return chips


def test_fast_path_keeps_the_exact_neighbourhoods_with_fewer_assignments() -> None:
    chips = clustered_chips(70, 0)
    exact = similarity_matrix_exact(chips, workers=2)
    assert np.allclose(exact, exact.T) and np.allclose(np.diag(exact), 1.0)
    fast = similarity_matrix_fast(chips, k=5, extra=10, workers=2, clusters=8)
    assert fast.n_exact < 0.6 * fast.n_pairs and fast.n_bounds > 0
    assert knn_agreement(fast.S, exact, k=5) >= 0.95
    bounds_only = similarity_matrix_fast(chips, k=5, extra=10, workers=2, clusters=8,
                                         max_exact=0)
    assert bounds_only.n_exact == 0 and knn_agreement(bounds_only.S, exact, k=5) >= 0.8
    solved = fast.solved
    np.testing.assert_allclose(fast.S[solved], exact[solved], atol=1e-12)


def test_knn_agreement_counts_shared_neighbours() -> None:
    S = np.array([[1, 0.9, 0.1, 0.2], [0.9, 1, 0.3, 0.1], [0.1, 0.3, 1, 0.8], [0.2, 0.1, 0.8, 1]])
    assert knn_agreement(S, S, k=1) == 1.0
    T = S.copy()
    T[0, 1] = T[1, 0] = 0.0
    assert knn_agreement(T, S, k=1) == 0.5
