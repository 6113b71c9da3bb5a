"""HIR Eq. 1 (weighted Manhattan distance), stage-2 re-ranking and LCBIR."""

import numpy as np
import pytest

from ml.hir.stage2 import class_weights, lcbir_rank, rerank, weighted_manhattan


def test_eq1_by_hand() -> None:
    x = np.array([0.5, 0.3, 0.2])
    Y = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    w = np.array([4.0, 1.0, 1.0])
    expected = [0.0, 4 * 0.4 + 0.3 + 0.1, 4 * 0.5 + 0.3 + 0.8]
    assert np.allclose(weighted_manhattan(x, Y, w), expected)
    assert np.allclose(weighted_manhattan(x, Y), [0.0, 0.8, 1.6])


def test_eq1_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="3 non-negative"):
        weighted_manhattan(np.zeros(3), np.zeros((1, 3)), np.array([1.0, -1.0, 1.0]))


def test_class_weights_name_the_class() -> None:
    assert class_weights(["buildings", "water"], {"buildings": 4}).tolist() == [4.0, 1.0]
    with pytest.raises(ValueError, match="'roads'"):
        class_weights(["buildings"], {"roads": 2})


def test_rerank_orders_the_shortlist_by_eq1_and_keeps_k() -> None:
    sb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.4], [0.9, 0.1]])
    I = np.array([[1, 2, 3, -1]])  # stage 1: 1 nearest, then 2, 3; a short list
    D, J = rerank(I, np.array([[1.0, 0.0]]), sb, None, 3)
    assert J.tolist() == [[3, 2, 1]]
    assert np.allclose(D, [[0.2, 0.8, 2.0]])
    _, J = rerank(I, np.array([[1.0, 0.0]]), sb, None)
    assert J[0, -1] == -1  # missing entries stay last


def test_weights_change_the_order() -> None:
    sb = np.array([[0.5, 0.5, 0.0], [0.3, 0.3, 0.4]])
    sq = np.array([[0.4, 0.6, 0.0]])
    assert rerank(np.array([[0, 1]]), sq, sb, None)[1].tolist() == [[0, 1]]
    heavy = np.array([1.0, 10.0, 0.0])
    assert rerank(np.array([[0, 1]]), sq, sb, heavy)[1].tolist() == [[0, 1]]
    assert rerank(np.array([[1, 0]]), sq, sb, np.array([0.0, 0.0, 0.0]))[1].tolist() == [[1, 0]]


def test_lcbir_ranks_everything() -> None:
    sb = np.eye(3)
    D = lcbir_rank(np.array([[0.0, 1.0, 0.0]]), sb)
    assert D.shape == (1, 3) and np.argmin(D) == 1
