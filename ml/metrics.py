"""Retrieval metrics: mAP@R, precision@N, precision-recall curves and their plot.

The protocols follow the two hashing papers in ``../shared/papers/``:

* DMCH (``dmch-deep-metric-category-hashing.txt``, Sec. 4.2): mean average precision over the
  whole ranked database (``R=None``) on a 60/40 split of UC Merced.
* DUWH (``duwh-deep-unsupervised-weighted-hashing.txt``, Eq. 19 and "Evaluation Criteria"):
  mAP over the top ``R = 1900`` results for EuroSAT (700 for PatternNet), precision of the top
  ``N`` and PR curves.

Relevance is label overlap: a database item is relevant to a query when they share at least
one label, which covers single-label data (integer class ids) and multi-label data (binary
label matrices) with one rule.

Vocabulary follows faiss: ``nq`` queries, ``nb`` database items, ``D`` distances of shape
``(nq, nb)``, rankings ``I`` of database indices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_QUERY_BLOCK = 256


def label_matrix(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Return a binary label matrix from class ids or an existing label matrix.

    Args:
        labels: integer class ids of shape (n,) or a 0/1 label matrix of shape (n, C).
        n_classes: number of classes C for class ids; inferred as ``max + 1`` when None.

    Returns:
        Boolean matrix of shape (n, C).

    Raises:
        ValueError: if ``labels`` is neither 1-D integer nor 2-D.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(bool)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integer class ids (n,) or a label matrix (n, C); got dtype "
            f"{labels.dtype} and shape {labels.shape}"
        )
    width = int(labels.max()) + 1 if n_classes is None else n_classes
    out = np.zeros((labels.shape[0], width), dtype=bool)
    out[np.arange(labels.shape[0]), labels] = True
    return out


def relevance(labels_q: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
    """Relevance of every database item to every query: they share at least one label.

    Args:
        labels_q: query labels, class ids (nq,) or label matrix (nq, C).
        labels_b: database labels, class ids (nb,) or label matrix (nb, C).

    Returns:
        Boolean matrix of shape (nq, nb).
    """
    n_classes = _common_width(labels_q, labels_b)
    yq = label_matrix(labels_q, n_classes).astype(np.float32)
    yb = label_matrix(labels_b, n_classes).astype(np.float32)
    if yq.shape[1] != yb.shape[1]:
        raise ValueError(f"labels_q has {yq.shape[1]} label columns but labels_b has {yb.shape[1]}")
    return (yq @ yb.T) > 0


def _common_width(labels_q: np.ndarray, labels_b: np.ndarray) -> int | None:
    """Number of classes shared by two class-id vectors, None for label matrices."""
    labels_q, labels_b = np.asarray(labels_q), np.asarray(labels_b)
    if labels_q.ndim == 1 and labels_b.ndim == 1:
        return int(max(labels_q.max(), labels_b.max())) + 1
    return None


def rank(D: np.ndarray) -> np.ndarray:
    """Rank database items by ascending distance; ties keep database order (stable sort).

    Args:
        D: distances of shape (nq, nb).

    Returns:
        I: database indices of shape (nq, nb), nearest first.
    """
    return np.argsort(D, axis=1, kind="stable")


def average_precision(ranked_rel: np.ndarray, n_relevant: np.ndarray | None = None) -> np.ndarray:
    """Average precision of each query from its ranked relevance list (DUWH Eq. 19).

    ``AP = sum_r P(r) delta(r) / norm`` where ``P(r)`` is the precision of the top ``r``
    results and ``delta(r)`` is 1 when the item at rank ``r`` is relevant. ``norm`` is the
    number of relevant items inside the list (the usual mAP@R of hashing papers) or, when
    ``n_relevant`` is given, the number of relevant items in the whole database (true AP).
    A query with no relevant item in its list scores 0.

    Args:
        ranked_rel: relevance of the returned items in rank order, shape (nq, R).
        n_relevant: optional total relevant count per query, shape (nq,).

    Returns:
        AP per query, shape (nq,).
    """
    rel = np.asarray(ranked_rel, dtype=bool)
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    summed = np.sum((hits / ranks) * rel, axis=1)
    norm = hits[:, -1] if n_relevant is None else np.asarray(n_relevant)
    return np.where(norm > 0, summed / np.maximum(norm, 1), 0.0)


def mean_average_precision(D: np.ndarray, rel: np.ndarray, topk: int | None = None) -> float:
    """mAP@R: mean over queries of the AP of the top ``topk`` results ranked by ``D``.

    With ``topk=None`` the whole database is ranked and AP is normalised by all relevant
    items (DMCH protocol); with ``topk=R`` it is normalised by the relevant items among the
    top R (DUWH protocol, R=1900 on EuroSAT).

    Args:
        D: distances of shape (nq, nb); smaller is more similar.
        rel: boolean relevance of shape (nq, nb), see :func:`relevance`.
        topk: R, the number of results scored; None for all.

    Returns:
        The mAP as a float in [0, 1].
    """
    _check_pair(D, rel)
    scores = [
        _block_ap(D[s : s + _QUERY_BLOCK], rel[s : s + _QUERY_BLOCK], topk)
        for s in range(0, D.shape[0], _QUERY_BLOCK)
    ]
    return float(np.concatenate(scores).mean())


def _block_ap(D: np.ndarray, rel: np.ndarray, topk: int | None) -> np.ndarray:
    """AP of one block of queries (keeps the (nq, nb) ranking memory bounded)."""
    ranked = np.take_along_axis(rel, rank(D), axis=1)
    if topk is None:
        return average_precision(ranked, rel.sum(axis=1))
    return average_precision(ranked[:, :topk])


def precision_at_n(D: np.ndarray, rel: np.ndarray, ns: list[int]) -> dict[int, float]:
    """Precision of the top N results, averaged over queries, for each N in ``ns``.

    Args:
        D: distances of shape (nq, nb).
        rel: boolean relevance of shape (nq, nb).
        ns: cut-offs N, each in [1, nb].

    Returns:
        Mapping N -> mean precision@N.
    """
    _check_pair(D, rel)
    if not ns or min(ns) < 1 or max(ns) > D.shape[1]:
        raise ValueError(f"ns must be non-empty cut-offs in [1, {D.shape[1]}]; got {ns}")
    ranked = np.take_along_axis(rel, rank(D), axis=1)
    hits = np.cumsum(ranked, axis=1)
    return {int(n): float(hits[:, n - 1].mean() / n) for n in ns}


def pr_curve(D: np.ndarray, rel: np.ndarray, n_points: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Precision-recall curve over ranking cut-offs, averaged over queries.

    Recall at cut-off N is the share of all relevant database items found in the top N.

    Args:
        D: distances of shape (nq, nb).
        rel: boolean relevance of shape (nq, nb).
        n_points: number of cut-offs, spread evenly from 1 to nb.

    Returns:
        (precision, recall), each of shape (n_points,).
    """
    _check_pair(D, rel)
    cuts = np.unique(np.linspace(1, D.shape[1], n_points).astype(int))
    ranked = np.take_along_axis(rel, rank(D), axis=1)
    hits = np.cumsum(ranked, axis=1)[:, cuts - 1]
    total = np.maximum(rel.sum(axis=1, keepdims=True), 1)
    return (hits / cuts).mean(axis=0), (hits / total).mean(axis=0)


def pr_curve_hamming(D: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision-recall curve over Hamming radii 0..K (the hashing papers' PR figures).

    Everything within radius ``r`` is returned; queries returning nothing at a radius are
    left out of that radius's mean precision.

    Args:
        D: integer Hamming distances of shape (nq, nb), values in [0, K].
        rel: boolean relevance of shape (nq, nb).

    Returns:
        (precision, recall), each of shape (K + 1,).
    """
    _check_pair(D, rel)
    D = np.asarray(D, dtype=np.int64)
    n_radii = int(D.max()) + 1
    offsets = D + n_radii * np.arange(D.shape[0])[:, None]
    size = D.shape[0] * n_radii
    per_radius = np.bincount(offsets.ravel(), minlength=size).reshape(-1, n_radii)
    rel_radius = np.bincount(offsets[rel], minlength=size).reshape(-1, n_radii)
    return _pr_from_counts(np.cumsum(per_radius, axis=1), np.cumsum(rel_radius, axis=1), rel)


def _pr_from_counts(
    retrieved: np.ndarray, hits: np.ndarray, rel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean precision and recall from per-query retrieved and hit counts (nq, n_radii)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nanmean(np.where(retrieved > 0, hits / retrieved, np.nan), axis=0)
    recall = (hits / np.maximum(rel.sum(axis=1, keepdims=True), 1)).mean(axis=0)
    return np.nan_to_num(precision, nan=0.0), recall


def plot_pr_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = ""
) -> Path:
    """Write a PNG with one precision-recall line per method.

    Args:
        curves: method name -> (precision, recall) arrays.
        path: output PNG path; parent folders are created.
        title: figure title.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (precision, recall) in curves.items():
        ax.plot(recall, precision, marker=".", label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _check_pair(D: np.ndarray, rel: np.ndarray) -> None:
    """Raise when distances and relevance disagree in shape."""
    if D.ndim != 2 or D.shape != rel.shape:
        raise ValueError(
            f"D and rel must both have shape (nq, nb); got D {D.shape} and rel {rel.shape}"
        )
