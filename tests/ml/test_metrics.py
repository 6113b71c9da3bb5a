"""Retrieval metrics against hand-computed examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.metrics import (
    average_precision,
    mean_average_precision,
    plot_pr_curves,
    pr_curve,
    pr_curve_hamming,
    precision_at_n,
    relevance,
)


def test_average_precision_by_hand() -> None:
    # ranked relevance 1 0 1 0: P(1) = 1, P(3) = 2/3 -> AP = (1 + 2/3) / 2
    ap = average_precision(np.array([[1, 0, 1, 0]], dtype=bool))
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_with_all_relevant_norm() -> None:
    # same list but 3 relevant items exist in the database: AP = (1 + 2/3) / 3
    ap = average_precision(np.array([[1, 0, 1, 0]], dtype=bool), np.array([3]))
    assert ap[0] == pytest.approx((1 + 2 / 3) / 3)


def test_query_without_relevant_scores_zero() -> None:
    assert average_precision(np.zeros((1, 3), dtype=bool))[0] == 0.0


def test_map_at_r_uses_distance_order() -> None:
    # database labels 0 1 0 1; query label 0; distances put items 1, 0, 3, 2 in order
    D = np.array([[2.0, 1.0, 4.0, 3.0]])
    rel = relevance(np.array([0]), np.array([0, 1, 0, 1]))
    # ranked relevance: 0 1 0 1 -> AP@4 = (1/2 + 2/4) / 2 = 0.5
    assert mean_average_precision(D, rel, topk=4) == pytest.approx(0.5)
    # top-2 only: 0 1 -> P(2) = 1/2 over one hit
    assert mean_average_precision(D, rel, topk=2) == pytest.approx(0.5)
    # two queries: second query (label 1) ranks 1 first -> 1 0 1 0 -> AP (1 + 2/3)/2
    D2 = np.vstack([D, D])
    rel2 = relevance(np.array([0, 1]), np.array([0, 1, 0, 1]))
    assert mean_average_precision(D2, rel2, topk=4) == pytest.approx((0.5 + 5 / 6) / 2)


def test_ties_keep_database_order() -> None:
    rel = np.array([[False, True]])
    assert mean_average_precision(np.array([[1, 1]]), rel) == pytest.approx(0.5)


def test_multilabel_relevance_shares_a_label() -> None:
    yq = np.array([[1, 0, 1]])
    yb = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]])
    assert relevance(yq, yb).tolist() == [[True, False, True]]


def test_precision_at_n() -> None:
    D = np.array([[0, 1, 2, 3]])
    rel = np.array([[True, False, True, True]])
    assert precision_at_n(D, rel, [1, 2, 4]) == {1: 1.0, 2: 0.5, 4: 0.75}
    with pytest.raises(ValueError, match="ns"):
        precision_at_n(D, rel, [5])


def test_pr_curve_hamming_by_hand() -> None:
    D = np.array([[0, 1, 1, 2]])
    rel = np.array([[True, True, False, False]])
    precision, recall = pr_curve_hamming(D, rel)
    assert precision.tolist() == pytest.approx([1.0, 2 / 3, 0.5])
    assert recall.tolist() == pytest.approx([0.5, 1.0, 1.0])


def test_pr_curve_ranking_and_plot(tmp_path: Path) -> None:
    D = np.array([[0.0, 1.0, 2.0, 3.0]])
    rel = np.array([[True, False, True, False]])
    precision, recall = pr_curve(D, rel, n_points=4)
    assert precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    assert recall.tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])
    out = plot_pr_curves({"toy": (precision, recall)}, tmp_path / "pr.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="D and rel"):
        mean_average_precision(np.zeros((2, 3)), np.zeros((2, 4), dtype=bool))
