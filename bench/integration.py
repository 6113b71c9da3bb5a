"""End-to-end dataset integration throughput: catalog + Zarr + features + index update.

Claim (main paper section 4.2 / 4.3.1: 100,000 samples in 30 min on a 5-node GPU
cluster, i.e. ~55 samples/s): on this 2-core CPU, integrating EuroSAT RGB end to end —
ingest (decode, Delta rows, Zarr pixels and thumbnails), image features (EfficientNet-Lite0
multi-scale encoder at 224 px, channels-last + bf16 where the CPU has it) and the IVF-PQ
index update — runs at >= 55 samples/s.

Data: ``../shared/data/eurosat_rgb`` (27,000 chips), or with ``--n N`` a seeded,
class-balanced subset of N chips (symlinked into a temporary folder tree, so the same
folder-tree source reads them). Every run starts from an empty temporary home.

Writes ``bench/results/integration.json``: ``{"dataset", "samples", "ingest_s",
"features_s", "index_s", "total_s", "samples_per_s", "features_img_per_s",
"model_version", "index_action", "bar", "passed", "cores", "cpu", "load_avg_1min"}``.

Run: ``python bench/integration.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, require_data, write_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from samplehub.config import load_config
from samplehub.feature_store import compute_features
from samplehub.index.lifecycle import update_ivfpq_index
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

BAR_SAMPLES_PER_S = 55.0


def subset_tree(root: Path, n: int, target: Path, seed: int = 0) -> Path:
    """Symlink a seeded, class-balanced subset of n images of a folder tree into ``target``."""
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    for folder in classes:
        files = sorted(folder.glob("*.jpg"))
        picked = rng.choice(len(files), min(n // len(classes), len(files)), replace=False)
        (target / folder.name).mkdir(parents=True)
        for i in sorted(picked):
            (target / folder.name / files[i].name).symlink_to(files[i])
    return target


def run(uri: Path) -> dict[str, object]:
    """Ingest, encode and index one folder tree in a fresh home; one result row."""
    with tempfile.TemporaryDirectory(prefix="samplehub-bench-") as home:
        repo = Repository(load_config([f"home={home}"]))
        start = time.perf_counter()
        ingest = repo.ingest(SourceSpec(name="eurosat", uri=str(uri), kind="folder_tree",
                                        options={"sensor": "sentinel-2-rgb"}), progress=True)
        features = compute_features(repo, "eurosat", progress=True)
        index = update_ivfpq_index(repo)
        total = time.perf_counter() - start
    return {
        "dataset": "eurosat",
        "samples": ingest.added,
        "ingest_s": round(ingest.seconds, 1),
        "features_s": round(features.seconds, 1),
        "index_s": round(index.seconds, 1),
        "total_s": round(total, 1),
        "samples_per_s": round(ingest.added / total, 1),
        "features_img_per_s": round(features.img_per_s, 1),
        "model_version": features.model_version,
        "index_action": index.action,
        "bar": BAR_SAMPLES_PER_S,
        "passed": ingest.added / total >= BAR_SAMPLES_PER_S,
        **machine(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    """One end-to-end run on EuroSAT (or a subset) and its JSON row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="class-balanced subset size")
    args = parser.parse_args()
    root = require_data("eurosat_rgb") / "eurosat_rgb"
    with tempfile.TemporaryDirectory(prefix="eurosat-subset-") as tmp:
        uri = root if args.n is None else subset_tree(root, args.n, Path(tmp) / "eurosat")
        row = run(uri)
    print(row)
    write_json("integration.json", row)


if __name__ == "__main__":
    main()
