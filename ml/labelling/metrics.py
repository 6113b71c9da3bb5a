"""Segment similarity measures of the paper's evaluation: feature-based and context-aware.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.9 and Tables 2-3.
For each evaluated segment A its nearest segment B in the embedding space is found (A itself
excluded) and the two are compared by four measures (Table 2, *feature-based*). Under the
*context-aware* evaluation (Table 3) the 8 spatially nearest segments of A and of B are paired
by the Hungarian algorithm (on embedding cosine) and the measures are averaged over the nine
pairs (A, B) and the eight matched neighbours.

The paper names the measures but not their exact formulas; the ones here:

* **GLCM** (lower is better): Euclidean distance between the two segments' bounding-box
  grey-level co-occurrence properties (contrast, dissimilarity, homogeneity, energy,
  correlation, ASM; 32 grey levels, distance 1, four angles averaged).
* **LBP** (higher is better): histogram intersection of the bounding boxes' uniform local
  binary patterns (P = 8, R = 1), in [0, 1].
* **SSIM** (higher is better): the luminance and contrast terms of SSIM from the pixel
  statistics *within* each segment, averaged over bands ((2 mu_a mu_b + C1)(2 s_a s_b + C2) /
  ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)), data range 1); two segments of different
  shapes have no pixel correspondence, so the structure term is left out.
* **SAM** (lower is better): the spectral angle, in radians, between the segments' mean
  spectra over every band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
GLCM_LEVELS = 32
LBP_POINTS = 8
LBP_BINS = LBP_POINTS + 2
C1, C2 = 0.01**2, 0.03**2
MEASURES = ("glcm", "lbp", "ssim", "sam")


@dataclass
class SegmentDescriptors:
    """Per-segment statistics of one chip, computed once.

    Attributes:
        glcm: (n, 6) GLCM properties of each segment's bounding box.
        lbp: (n, 10) normalised uniform-LBP histogram of each bounding box.
        mean: (n, D) per-band mean within the segment (the mean spectrum).
        std: (n, D) per-band standard deviation within the segment.
    """

    glcm: np.ndarray
    lbp: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def describe_segments(image: np.ndarray, rgb: np.ndarray, labels: np.ndarray) -> SegmentDescriptors:
    """Descriptors of every segment of a chip.

    Args:
        image: (D, H, W) float chip, every band, scaled to about [0, 1].
        rgb: (H, W, 3) chip in [0, 1] (its mean is the grey image of GLCM and LBP).
        labels: (H, W) segment ids 0..n-1.
    """
    from scipy import ndimage
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

    n = int(labels.max()) + 1
    grey = np.clip(rgb.mean(-1), 0.0, 1.0)
    grey_q = np.minimum((grey * GLCM_LEVELS).astype(np.uint8), GLCM_LEVELS - 1)
    lbp = local_binary_pattern((grey * 255).astype(np.uint8), LBP_POINTS, 1, method="uniform")
    glcm = np.zeros((n, len(GLCM_PROPS)))
    hist = np.zeros((n, LBP_BINS))
    for i, box in enumerate(ndimage.find_objects(labels + 1)):
        if box is None:
            continue
        P = graycomatrix(grey_q[box], [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                         levels=GLCM_LEVELS, symmetric=True, normed=True)
        glcm[i] = [graycoprops(P, p).mean() for p in GLCM_PROPS]
        h = np.bincount(lbp[box].astype(np.int64).ravel(), minlength=LBP_BINS)[:LBP_BINS]
        hist[i] = h / max(h.sum(), 1)
    glcm = np.nan_to_num(glcm)  # correlation of a flat box is undefined
    flat = labels.ravel()
    counts = np.maximum(np.bincount(flat, minlength=n), 1)[:, None]
    pixels = image.reshape(image.shape[0], -1).T.astype(np.float64)
    sums = np.stack([np.bincount(flat, pixels[:, d], n) for d in range(pixels.shape[1])], 1)
    mean: np.ndarray = sums / counts
    sq = np.stack([np.bincount(flat, pixels[:, d] ** 2, n) for d in range(pixels.shape[1])], 1)
    std = np.sqrt(np.maximum(sq / counts - mean**2, 0.0))
    return SegmentDescriptors(glcm, hist, mean, std)


def pair_measures(a: SegmentDescriptors, i: int, b: SegmentDescriptors, j: int) -> np.ndarray:
    """(GLCM, LBP, SSIM, SAM) between segment ``i`` of one chip and ``j`` of another."""
    glcm = float(np.linalg.norm(a.glcm[i] - b.glcm[j]))
    lbp = float(np.minimum(a.lbp[i], b.lbp[j]).sum())
    ma, mb, sa, sb = a.mean[i], b.mean[j], a.std[i], b.std[j]
    ssim = float(np.mean((2 * ma * mb + C1) * (2 * sa * sb + C2)
                         / ((ma**2 + mb**2 + C1) * (sa**2 + sb**2 + C2))))
    cos = float(ma @ mb / max(np.linalg.norm(ma) * np.linalg.norm(mb), 1e-12))
    sam = float(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.array([glcm, lbp, ssim, sam])


@dataclass
class SegmentEvaluation:
    """Mean measures over the evaluated segments (section 2.9)."""

    feature_based: dict[str, float]
    context_aware: dict[str, float]
    n_segments: int


def evaluate_segments(
    embeddings: Sequence[np.ndarray],
    descriptors: Sequence[SegmentDescriptors],
    neighbours: Sequence[np.ndarray],
    n_eval: int = 1000,
    seed: int = 0,
) -> SegmentEvaluation:
    """Feature-based and context-aware measures (Tables 2-3) of a set of chips.

    Args:
        embeddings: per chip, node embeddings (n_i, D).
        descriptors: per chip, :func:`describe_segments`.
        neighbours: per chip, (n_i, 8) ids of each segment's spatially nearest segments.
        n_eval: segments A evaluated (a seeded uniform draw over all segments).
        seed: seeds the draw.
    """
    from scipy.optimize import linear_sum_assignment

    from ml.labelling.matching import normalise_rows

    sizes = np.array([len(e) for e in embeddings])
    chip_of = np.repeat(np.arange(len(sizes)), sizes)
    local = np.concatenate([np.arange(s) for s in sizes])
    U = normalise_rows(np.concatenate(embeddings))
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(U), min(n_eval, len(U)), replace=False))
    feature, context = [], []
    for a in picks:
        sims = U @ U[a]
        sims[a] = -np.inf
        b = int(np.argmax(sims))
        ca, ia, cb, ib = chip_of[a], local[a], chip_of[b], local[b]
        first = pair_measures(descriptors[ca], ia, descriptors[cb], ib)
        feature.append(first)
        na, nb = neighbours[ca][ia], neighbours[cb][ib]
        Ea = normalise_rows(embeddings[ca][na])
        Eb = normalise_rows(embeddings[cb][nb])
        rows, cols = linear_sum_assignment(Ea @ Eb.T, maximize=True)
        pairs = [first] + [pair_measures(descriptors[ca], int(na[r]), descriptors[cb], int(nb[c]))
                           for r, c in zip(rows, cols, strict=True)]
        context.append(np.mean(pairs, axis=0))
    f, c = np.mean(feature, axis=0), np.mean(context, axis=0)
    return SegmentEvaluation(dict(zip(MEASURES, map(float, f), strict=True)),
                             dict(zip(MEASURES, map(float, c), strict=True)), len(picks))
