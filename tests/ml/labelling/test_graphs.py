import numpy as np

from ml.labelling.graphs import (
    build_graph,
    knn_edges,
    segment_centroids,
    segment_means,
    slic_segments,
)


def quadrants(h: int = 40, w: int = 40) -> np.ndarray:
    rgb = np.zeros((h, w, 3))
    rgb[: h // 2, : w // 2] = [1, 0, 0]
    rgb[: h // 2, w // 2 :] = [0, 1, 0]
    rgb[h // 2 :, : w // 2] = [0, 0, 1]
    rgb[h // 2 :, w // 2 :] = [1, 1, 0]
    return rgb


def test_slic_segments_stay_inside_colour_regions() -> None:
    rgb = quadrants()
    labels = slic_segments(rgb, n_segments=16)
    assert labels.dtype == np.int32 and labels.min() == 0
    assert set(np.unique(labels)) == set(range(labels.max() + 1))
    colour = rgb @ np.array([1, 2, 4])
    for s in range(labels.max() + 1):
        assert len(np.unique(colour[labels == s])) == 1


def test_segment_means_and_centroids_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(9, 11)).astype(np.int32)
    maps = rng.normal(size=(3, 9, 11))
    means = segment_means(labels, maps)
    for s in range(5):
        np.testing.assert_allclose(means[s], maps[:, labels == s].mean(1), rtol=1e-5)
    rows, cols = np.nonzero(labels == 2)
    np.testing.assert_allclose(segment_centroids(labels)[2], [rows.mean(), cols.mean()], rtol=1e-5)


def test_knn_edges_join_the_nearest_other_segments() -> None:
    rng = np.random.default_rng(0)
    cents = rng.uniform(0, 100, size=(30, 2))
    ei = knn_edges(cents, k=8)
    assert ei.shape == (2, 240)
    assert not (ei[0] == ei[1]).any()
    for i in range(30):
        d = np.linalg.norm(cents - cents[i], axis=1)
        d[i] = np.inf
        assert set(ei[0][ei[1] == i]) == set(np.argsort(d)[:8])
    assert knn_edges(cents[:3], k=8).shape == (2, 6)


def test_build_graph_targets_are_mean_memberships() -> None:
    rgb = quadrants()
    maps = np.random.default_rng(0).normal(size=(4, 40, 40)).astype(np.float32)
    memb = np.stack([rgb[..., 0], 1 - rgb[..., 0]])
    g = build_graph(rgb, maps, memb, n_segments=16, k=3)
    assert g.x.shape == (g.n_nodes, 4) and g.target.shape == (g.n_nodes, 2)
    np.testing.assert_allclose(g.target.sum(1), 1.0, rtol=1e-6)
    assert g.edge_index.shape == (2, 3 * g.n_nodes)
    assert set(np.unique(g.target)) <= {0.0, 1.0}  # segments never straddle red/non-red
