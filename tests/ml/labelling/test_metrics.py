import numpy as np

from ml.labelling.graphs import knn_edges, segment_centroids, slic_segments
from ml.labelling.metrics import describe_segments, evaluate_segments, pair_measures


def chip(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(0.1, 0.9, size=(4, 4, 4))  # 8x8-pixel patches of random spectra
    image = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)
    image = np.clip(image + rng.normal(0, 0.02, size=image.shape), 0, 1)
    return image, np.moveaxis(image[:3], 0, -1)


def test_a_segment_compared_with_itself_is_perfectly_similar() -> None:
    image, rgb = chip(0)
    labels = slic_segments(np.clip(rgb, 0, 1), n_segments=12)
    d = describe_segments(image, rgb, labels)
    glcm, lbp, ssim, sam = pair_measures(d, 0, d, 0)
    assert glcm == 0.0 and abs(lbp - 1.0) < 1e-9 and abs(ssim - 1.0) < 1e-9 and sam < 1e-6
    other = int(np.argmax(np.linalg.norm(d.mean - d.mean[0], axis=1)))
    _, _, ssim2, sam2 = pair_measures(d, 0, d, other)
    assert ssim2 < ssim and sam2 > sam


def test_evaluation_gives_both_tables() -> None:
    embs, descs, neigh = [], [], []
    for seed in range(3):
        image, rgb = chip(seed)
        labels = slic_segments(np.clip(rgb, 0, 1), n_segments=20)
        n = labels.max() + 1
        descs.append(describe_segments(image, rgb, labels))
        embs.append(descs[-1].mean.astype(np.float32))  # embedding = mean spectrum
        ei = knn_edges(segment_centroids(labels), k=8)
        neigh.append(ei[0].reshape(n, -1))
    result = evaluate_segments(embs, descs, neigh, n_eval=15)
    assert result.n_segments == 15
    for table in (result.feature_based, result.context_aware):
        assert set(table) == {"glcm", "lbp", "ssim", "sam"}
        assert all(np.isfinite(v) for v in table.values())
        assert 0 < table["ssim"] <= 1 and 0 <= table["lbp"] <= 1
