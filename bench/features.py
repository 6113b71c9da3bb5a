"""Feature-extraction throughput (fp32 vs bf16, NCHW vs channels-last) and bf16's effect on recall.

Claim (issue 4, main paper section 4.2 / Table 3): EfficientNet-Lite0 at 224 px reaches
>= 90 img/s on this 2-core CPU with channels-last + bfloat16, and bf16 changes recall@100
by < 0.01. Data: a class-balanced subset of real EuroSAT RGB chips (64 px, upsampled to
224) from ``../shared/data/eurosat_rgb``; decoding is excluded from the timing, resizing
and normalisation are included.

Writes ``bench/results/features.json``: a list of rows ``{"resolution", "precision",
"img_per_s", "cores", "memory_format", "n_images"}`` plus, for fp32 and bf16, the recall
figures: ``recall_at_100`` of IVF-PQ search over that precision's features against exact
search over the fp32 features, ``exact_overlap_at_100`` (exact top-100 of bf16 vs fp32)
and ``label_p_at_100`` (share of the top 100 with the query's EuroSAT class).

Run: ``python bench/features.py [--n-images 2000] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "eurosat_rgb"
OUT = ROOT / "bench" / "results" / "features.json"
K = 100


def load_eurosat(root: Path, n_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, class-balanced subset: uint8 images (N, 3, 64, 64) and class ids (N,)."""
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    per_class = n_images // len(classes)
    images, labels = [], []
    for c, name in enumerate(classes):
        files = sorted((root / name).glob("*.jpg"))
        for f in rng.choice(files, min(per_class, len(files)), replace=False):
            rgb = np.asarray(Image.open(f).convert("RGB").resize((64, 64)))
            images.append(rgb.transpose(2, 0, 1))
            labels.append(c)
    return np.stack(images), np.asarray(labels)


def timed_extract(
    encoder: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, **kwargs: Any
) -> tuple[np.ndarray, float]:
    """Features and images per second of one extraction pass (after a one-batch warm-up)."""
    from ml.features.extract import extract_features

    extract_features(encoder, images[: kwargs.get("batch_size", 32)], **kwargs)
    start = time.perf_counter()
    xb = extract_features(encoder, images, **kwargs)
    return xb, len(images) / (time.perf_counter() - start)


def recall_rows(
    feats: dict[str, np.ndarray], labels: np.ndarray, n_queries: int = 200
) -> dict[str, dict[str, float]]:
    """Per precision: ANN recall@100, exact top-100 overlap with fp32, label P@100.

    ANN recall is IVF-PQ (+ exact re-rank) search against exact search over the fp32
    features and against exact search over the same precision's features; label P@100 is
    the share of the exact top 100 with the query's EuroSAT class. The index is lossier
    than the shipped one on purpose (32 cells, nprobe 16, re-rank 4x; the shipped settings
    scan all of a 2,000-vector index), so a precision change that moved neighbours across
    cells or PQ codes would show.
    """
    from samplehub.index.ivfpq import (
        build_ivfpq_index,
        exact_search,
        recall_at_k,
        search,
        suggest_nlist,
    )

    nb = len(labels)
    rng = np.random.default_rng(1)
    queries = rng.choice(nb, n_queries, replace=False)
    ids = np.arange(nb, dtype=np.int64)
    _, I_truth = exact_search(feats["fp32"], feats["fp32"][queries], K)
    out = {}
    for precision, xb in feats.items():
        xq = xb[queries]
        _, I_exact = exact_search(xb, xq, K)
        nlist = min(32, suggest_nlist(nb, cell_size=39))  # half the cells scanned: lossy
        nbits = min(8, int(np.log2(nb / 39)))  # >= 39 training points per PQ centroid
        index = build_ivfpq_index(xb, ids, nlist, m=xb.shape[1] // 8, nbits=nbits)
        _, I = search(index, xq, K, nprobe=16, k_factor=4)
        out[precision] = {
            "recall_at_100": recall_at_k(I, I_truth, K),
            "recall_at_100_own_exact": recall_at_k(I, I_exact, K),
            "exact_overlap_at_100": recall_at_k(I_exact, I_truth, K),
            "label_p_at_100": float((labels[I_exact] == labels[queries, None]).mean()),
        }
    return out


def main() -> int:
    """Run the benchmark and write the JSON rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--nchw-images", type=int, default=256, help="subset for fp32 NCHW")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipping: EuroSAT RGB not found at {DATA} (needs ../shared/data)")
        return 0

    from ml.features.extract import resolve_precision
    from ml.features.multiscale import build_multiscale_encoder

    images, labels = load_eurosat(DATA, args.n_images)
    print(
        f"{len(images)} EuroSAT images, {args.threads} threads, {args.resolution} px; "
        f"auto precision here: {resolve_precision('auto')}"
    )
    load = os.getloadavg()[0]
    print(f"1-minute load average before timing: {load:.2f} (other processes share the cores)")
    encoder = build_multiscale_encoder()
    common = {"num_threads": args.threads, "resolution": args.resolution, "batch_size": 32}
    rows, feats = [], {}
    runs = [
        ("fp32", False, images[: args.nchw_images]),
        ("fp32", True, images),
        ("bf16", True, images),
    ]
    for precision, channels_last, subset in runs:
        xb, speed = timed_extract(
            encoder, subset, precision=precision, channels_last=channels_last, **common
        )
        layout = "channels_last" if channels_last else "nchw"
        print(f"{precision:5s} {layout:14s} {speed:7.1f} img/s ({len(subset)} images)")
        rows.append(
            {
                "resolution": args.resolution,
                "precision": precision,
                "img_per_s": round(speed, 2),
                "cores": args.threads,
                "memory_format": layout,
                "n_images": len(subset),
                "load_avg_1min": round(load, 2),
            }
        )
        if channels_last:
            feats[precision] = xb
    quality = recall_rows(feats, labels)
    for row in rows:
        if row["memory_format"] == "channels_last":
            row.update({k: round(v, 4) for k, v in quality[row["precision"]].items()})
    for precision, q in quality.items():
        print(precision, {k: round(v, 4) for k, v in q.items()})
    delta = quality["fp32"]["recall_at_100"] - quality["bf16"]["recall_at_100"]
    own = quality["fp32"]["recall_at_100_own_exact"] - quality["bf16"]["recall_at_100_own_exact"]
    print(f"recall@100 vs fp32 exact, change fp32 -> bf16: {-delta:+.4f}")
    print(f"recall@100 vs own exact search, change fp32 -> bf16: {-own:+.4f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
