"""Segment graphs of chips: SLIC super-pixels as nodes, 8 nearest segments as edges.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.5. SLIC (Achanta et
al., 2012) runs on a chip's RGB bands with a target of S = 500 segments; each segment is a
node whose features are the means of the U-Net's activation maps over its pixels; each node
is joined to its K = 8 geographically nearest segments (by centroid), giving about 8n edges.
The node's training target (section 2.6) is the mean fuzzy C-means membership of its pixels.

Edges are stored as ``edge_index`` (2, E) in PyTorch Geometric's convention: row 0 the source
(a neighbour), row 1 the target node that aggregates it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_SEGMENTS = 500
K_NEIGHBOURS = 8


@dataclass
class SegmentGraph:
    """One chip as a graph (section 2.5).

    Attributes:
        labels: (H, W) int32 SLIC label image, ids 0..n-1.
        x: (n, F) float32 node features (mean activation maps per segment).
        edge_index: (2, n*K) int64, neighbour -> node.
        centroids: (n, 2) float32 segment centroids (row, col) in pixels.
        target: (n, C) float32 mean fuzzy C-means membership per segment.
    """

    labels: np.ndarray
    x: np.ndarray
    edge_index: np.ndarray
    centroids: np.ndarray
    target: np.ndarray

    @property
    def n_nodes(self) -> int:
        """Number of segments."""
        return int(self.x.shape[0])


def slic_segments(
    rgb: np.ndarray, n_segments: int = N_SEGMENTS, compactness: float = 10.0
) -> np.ndarray:
    """SLIC super-pixels of an (H, W, 3) RGB chip scaled to [0, 1]; (H, W) int32 ids 0..n-1."""
    from skimage.segmentation import slic

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"SLIC takes an (H, W, 3) RGB chip, got shape {rgb.shape}")
    labels = slic(np.clip(rgb, 0.0, 1.0), n_segments=n_segments, compactness=compactness,
                  start_label=0, channel_axis=-1)
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def segment_means(labels: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Mean of each map over each segment: labels (H, W) ids 0..n-1, maps (F, H, W) -> (n, F)."""
    if labels.shape != maps.shape[1:]:
        raise ValueError(f"label image {labels.shape} and maps {maps.shape} differ in size")
    n = int(labels.max()) + 1
    f = maps.shape[0]
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n).astype(np.float64)
    index = (flat[None, :] + n * np.arange(f)[:, None]).ravel()
    sums = np.bincount(index, weights=maps.reshape(f, -1).ravel().astype(np.float64),
                       minlength=n * f).reshape(f, n)
    return (sums / np.maximum(counts, 1.0)).T.astype(np.float32)  # type: ignore[no-any-return]


def segment_centroids(labels: np.ndarray) -> np.ndarray:
    """(n, 2) float32 centroid (row, col) of each segment of ``labels`` (H, W)."""
    h, w = labels.shape
    rows, cols = np.mgrid[0:h, 0:w]
    return segment_means(labels, np.stack([rows, cols]).astype(np.float32))


def knn_edges(centroids: np.ndarray, k: int = K_NEIGHBOURS) -> np.ndarray:
    """Edges from each node's ``k`` nearest other nodes (by centroid) to it: (2, n*k) int64.

    With fewer than ``k + 1`` nodes every node is joined to all others.
    """
    from scipy.spatial import cKDTree

    n = len(centroids)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((2, 0), np.int64)
    _, idx = cKDTree(centroids).query(centroids, k=k + 1)
    neighbours = np.empty((n, k), np.int64)
    for i in range(n):  # drop the node itself (ties may put it anywhere in the first slots)
        row = idx[i][idx[i] != i]
        neighbours[i] = row[:k]
    targets = np.repeat(np.arange(n, dtype=np.int64), k)
    return np.stack([neighbours.ravel(), targets])


def build_graph(
    rgb: np.ndarray,
    maps: np.ndarray,
    memberships: np.ndarray,
    n_segments: int = N_SEGMENTS,
    k: int = K_NEIGHBOURS,
    compactness: float = 10.0,
) -> SegmentGraph:
    """The graph of one chip (section 2.5).

    Args:
        rgb: (H, W, 3) chip in [0, 1], segmented by SLIC.
        maps: (F, H, W) U-Net activation maps of the chip.
        memberships: (C, H, W) fuzzy C-means memberships of the chip.
        n_segments: SLIC's target segment count S.
        k: geographic neighbours per node K.
        compactness: SLIC's colour/space trade-off.
    """
    labels = slic_segments(rgb, n_segments, compactness)
    centroids = segment_centroids(labels)
    return SegmentGraph(
        labels=labels,
        x=segment_means(labels, maps),
        edge_index=knn_edges(centroids, k),
        centroids=centroids,
        target=segment_means(labels, memberships),
    )
