"""Feature-extraction throughput per runtime and precision, beside its effect on recall.

Claim (main paper section 4.2: feature extraction dominates integration time): on 2 CPU
cores without native bf16, the ONNX Runtime copy of EfficientNet-Lite0 (224 px) encodes at
least twice as many images per second as PyTorch's fp32 channels-last path, with the same
features (recall@100 unchanged); where the CPU has native bf16, PyTorch's bf16 autocast is
the fastest path and changes recall@100 by < 0.01. ``model.runtime: auto`` follows this.

Data: a class-balanced subset of real EuroSAT RGB chips (64 px, upsampled to 224) from
``../shared/data/eurosat_rgb``; decoding is excluded from the timing, resizing and
normalisation are included; 1 process, ``--threads`` intra-op threads.

Writes ``bench/results/features.json``: a list of rows ``{"runtime", "precision",
"memory_format", "img_per_s", "n_images", ...}``, each with the machine and its load, and
for the full-size rows the quality: ``recall_at_100`` of IVF-PQ search over that row's
features against exact search over the PyTorch fp32 features, ``recall_at_100_own_exact``
(against exact search over its own features), ``exact_overlap_at_100`` (exact top 100 vs
PyTorch fp32's) and ``label_p_at_100`` (share of the top 100 with the query's EuroSAT class).
Without native bf16 the bf16 row is timed on 64 images only (emulated bf16 runs at about
1 img/s here) and carries no quality figures.

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
    feats: dict[str, np.ndarray], labels: np.ndarray, reference: str, n_queries: int = 200
) -> dict[str, dict[str, float]]:
    """Per feature set: ANN recall@100, exact top-100 overlap with ``reference``, label P@100.

    ANN recall is IVF-PQ (+ exact re-rank) search against exact search over the
    ``reference`` features and against exact search over the same set's features; label P@100 is
    the share of the exact top 100 with the query's EuroSAT class. The index is lossier
    than the shipped one on purpose (32 cells, nprobe 16, re-rank 4x; the shipped settings
    scan all of a 2,000-vector index), so a precision change that moved neighbours across
    cells or PQ codes would show.

    Args:
        feats: features per row name, all of the same images.
        labels: EuroSAT class of each image.
        reference: the row whose exact search is the truth (PyTorch fp32).
        n_queries: images used as queries.

    Returns:
        Quality figures per row name.
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
    _, I_truth = exact_search(feats[reference], feats[reference][queries], K)
    out = {}
    for name, xb in feats.items():
        xq = xb[queries]
        _, I_exact = exact_search(xb, xq, K)
        nlist = min(32, suggest_nlist(nb, cell_size=39))  # half the cells scanned: lossy
        nbits = min(8, int(np.log2(nb / 39)))  # >= 39 training points per PQ centroid
        index = build_ivfpq_index(xb, ids, nlist, m=xb.shape[1] // 8, nbits=nbits)
        _, I = search(index, xq, K, nprobe=16, k_factor=4)
        out[name] = {
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

    from common import machine

    from ml.features.extract import resolve_precision
    from ml.features.multiscale import build_multiscale_encoder
    from ml.features.runtime import compile_encoder, resolve_runtime

    images, labels = load_eurosat(DATA, args.n_images)
    native_bf16 = resolve_precision("auto") == "bf16"
    print(
        f"{len(images)} EuroSAT images, {args.threads} threads, {args.resolution} px; "
        f"native bf16: {native_bf16}; model.runtime auto -> {resolve_runtime('auto', 'auto')}"
    )
    load = os.getloadavg()[0]
    print(f"1-minute load average before timing: {load:.2f} (other processes share the cores)")
    encoder = build_multiscale_encoder()
    common = {"num_threads": args.threads, "resolution": args.resolution, "batch_size": 32}
    onnx = compile_encoder(
        encoder, "onnx", precision="fp32", resolution=args.resolution, num_threads=args.threads
    )
    bf16_images = images if native_bf16 else images[:64]
    runs = [  # (name, runtime, encoder, precision, channels_last, images)
        ("torch-fp32-nchw", "torch", encoder, "fp32", False, images[: args.nchw_images]),
        ("torch-fp32", "torch", encoder, "fp32", True, images),
        ("onnx-fp32", "onnx", onnx, "fp32", False, images),
        ("torch-bf16", "torch", encoder, "bf16", True, bf16_images),
    ]
    rows, feats = [], {}
    for name, runtime, model, precision, channels_last, subset in runs:
        xb, speed = timed_extract(
            model, subset, precision=precision, channels_last=channels_last, **common
        )
        layout = "channels_last" if channels_last else "nchw"
        print(f"{name:16s} {speed:7.1f} img/s ({len(subset)} images)")
        rows.append({
            "runtime": runtime, "precision": precision, "memory_format": layout,
            "resolution": args.resolution, "img_per_s": round(speed, 2),
            "n_images": len(subset), "threads": args.threads,
            "bf16_native": native_bf16 if precision == "bf16" else None,
            "data": "real: EuroSAT RGB, class-balanced", "load_avg_1min": round(load, 2),
            "machine": machine(),
        })
        if len(subset) == len(images) and name != "torch-fp32-nchw":
            feats[name] = xb
    quality = recall_rows(feats, labels, reference="torch-fp32")
    for name, row in zip([r[0] for r in runs], rows, strict=True):
        if name in quality:
            row.update({k: round(v, 4) for k, v in quality[name].items()})
    if "onnx-fp32" in feats:
        diff = float(np.abs(feats["onnx-fp32"] - feats["torch-fp32"]).max())
        rows[2]["max_abs_diff_vs_torch_fp32"] = float(f"{diff:.2e}")
    for name, q in quality.items():
        print(name, {k: round(v, 4) for k, v in q.items()})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
