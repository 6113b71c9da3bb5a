"""Scale-out: ingest, features and the IVF-PQ build of EuroSAT per executor -> scale.json.

Real data: EuroSAT RGB, all 27,000 images and a 2,700-image subset (the first 270 of each
class), each ingested into a fresh home, encoded with the shipped feature model (224 px)
and indexed, by:

- ``threads``: the in-process default (one process, a thread pool);
- ``spark_local``: ``executor=spark`` on ``local[2]``: the JVM the driver starts runs two
  task threads, each feeding a Python worker process, so ``driver_jvm_peak_rss_mb`` holds
  the executors' JVM side too (the Python workers are not counted, as on the cluster);
- ``spark_cluster``: a Spark standalone master and two one-core workers started on
  loopback from the pyspark wheel (``tests/loopback.py``); executors decode, write pixels
  and catalog part files, encode and build index shards; the driver commits and merges.

Every run is its own process, so its peak RSS is its own: ``driver_peak_rss_mb`` is the
driver's Python process, ``driver_jvm_peak_rss_mb`` the JVM it starts (Spark's driver,
which in cluster mode holds no executor). ``driver_peak_rss_ratio`` divides the 27,000 run's
peak by the 2,700 run's: a driver that does not grow with the data stays near 1.
``matches_threads``: a Spark run's catalog rows, stored pixels, feature vectors (float
tolerance) and index answers equal the threads run's. The store figures measure each
27,000 run's image store as shipped (``samplehub.store``: shards of one-sample chunks,
lossless WebP) against the source JPEGs' bytes.

Usage: ``python bench/scale_out.py`` (about 30 minutes on 2 quiet cores); ``--sizes 2700`` for
a quick look; ``--executors spark_local`` re-measures those rows only and keeps the others
from ``scale.json`` (each row records when it ran and its load). Homes are kept under
``bench/.cache/scale_out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, RESULTS, load_test_helper, machine, require_data, write_json

CACHE = REPO / "bench" / ".cache" / "scale_out"
EXECUTORS = ("threads", "spark_local", "spark_cluster")
LOCAL_MASTER = "local[2]"
SIZES = (2700, 27000)


def subset(data: Path, n: int) -> Path:
    """EuroSAT RGB, or a copy of its first ``n / 10`` images per class.

    A copy, not links: links point outside the source root, which ingest refuses to follow.
    """
    source = data / "eurosat_rgb"
    if n >= 27000:
        return source
    root = CACHE / f"eurosat_{n}"
    if not root.exists():
        for folder in sorted(p for p in source.iterdir() if p.is_dir()):
            (root / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[: n // 10]:
                shutil.copy(image, root / folder.name / image.name)
    return root


def overrides(home: Path, master: str | None) -> list[str]:
    """The run's Hydra overrides: its home, and the cluster's master when on Spark."""
    spark = ["executor=spark", f"executor.spark_master='{master}'"] if master else []
    return [f"home={home}", *spark]


def run_one(home: Path, images: Path, master: str | None) -> dict[str, Any]:
    """Ingest, features, index in this process; the stage times and this run's peaks."""
    import psutil

    from samplehub.feature_store import compute_features
    from samplehub.index.lifecycle import update_ivfpq_index
    from samplehub.repository import Repository
    from samplehub.sources import SourceSpec

    repo = Repository.open(overrides(home, master))
    seconds = {}
    started = time.perf_counter()
    report = repo.ingest(SourceSpec(name="eurosat", uri=str(images)))
    seconds["ingest"] = time.perf_counter() - started
    features = compute_features(repo, "eurosat")
    seconds["features"] = time.perf_counter() - started - seconds["ingest"]
    index = update_ivfpq_index(repo)
    seconds["index"] = index.seconds
    jvm = 0.0
    for child in psutil.Process().children(recursive=True):
        if child.name() == "java":  # Spark's driver JVM: its high-water mark before it ends
            status = Path(f"/proc/{child.pid}/status").read_text()
            jvm = max(jvm, int(status.split("VmHWM:")[1].split()[0]) / 1024)
    return {
        "samples": report.added,
        "features": features.computed,
        "indexed": index.ntotal,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "driver_jvm_peak_rss_mb": round(jvm) if jvm else None,
    }


def matches(threads_home: Path, cluster_home: Path, executor: str) -> dict[str, Any]:
    """A Spark run's results against the threads run's, part by part.

    Features are compared within bf16's rounding: under bf16 autocast (the shipped
    ``precision: auto`` on this CPU) the kernels' blocking follows the thread count, and an
    executor encodes with one thread per core where the threads run uses every core. The
    index is compared by what it is for: recall@100 against exact search over each run's
    own vectors, on the same 200 queries, which must agree within 0.01.
    """
    kills = load_test_helper("kills")
    from samplehub.index.ivfpq import exact_search, recall_at_k, search
    from samplehub.index.lifecycle import load_ivfpq_index
    from samplehub.repository import Repository

    ours = Repository.open(overrides(cluster_home, None))
    theirs = Repository.open(overrides(threads_home, None))
    (ids, xb), (ids_t, xb_t) = (kills.feature_snapshot(r, "eurosat") for r in (ours, theirs))
    rows = np.arange(0, len(xb_t), max(1, len(xb_t) // 200))[:200]
    recall = {}
    for name, repo, vectors, keys in ((executor, ours, xb, ids),
                                      ("threads", theirs, xb_t, ids_t)):
        exact = exact_search(vectors, vectors[rows], 100, ids=keys)[1]
        found = search(load_ivfpq_index(repo), vectors[rows], 100, 16, 4)[1]
        recall[name] = round(recall_at_k(found, exact), 4)
    difference = float(np.abs(xb - xb_t).max()) if xb.shape == xb_t.shape else float("inf")
    return {
        "catalog": bool(kills.catalog_snapshot(ours, "eurosat")
                        .equals(kills.catalog_snapshot(theirs, "eurosat"))),
        "pixels": bool(kills.stored_pixels_match(ours, "eurosat")
                       and ours.store.dataset("eurosat").row_counts()
                       == theirs.store.dataset("eurosat").row_counts()),
        "features": bool(np.array_equal(ids, ids_t) and difference <= 5e-3),
        "features_max_abs_diff": round(difference, 6),
        "index_recall_at_100": recall,
        "index": abs(recall[executor] - recall["threads"]) <= 0.01,
    }


def store_figures(home: Path, images: Path, samples: int) -> dict[str, Any]:
    """Bytes and objects of the dataset's image store against its source files."""
    store = home / "zarr" / "eurosat.zarr"
    files = [p for p in store.rglob("*") if p.is_file()]
    source = sum(p.stat().st_size for p in images.rglob("*") if p.is_file())
    stored = sum(p.stat().st_size for p in files)
    return {
        "store_bytes": stored,
        "source_bytes": source,
        "store_bytes_ratio": round(stored / source, 2),
        "objects": len(files),
        "objects_per_1000_samples": round(1000 * len(files) / samples, 1),
    }


def child(executor: str, n: int, master: str | None) -> dict[str, Any]:
    """One run in a fresh process (its own peak RSS)."""
    home = CACHE / f"{executor}-{n}"
    shutil.rmtree(home, ignore_errors=True)
    images = subset(require_data("eurosat_rgb"), n)
    code = (f"import sys, json; sys.path[:0] = [{str(REPO / 'bench')!r}, {str(REPO)!r}]; "
            "from scale_out import run_one; from pathlib import Path; "
            f"print(json.dumps(run_one(Path({str(home)!r}), Path({str(images)!r}), "
            f"{master!r})))")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{executor} {n}: {out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    row["load_avg_1m_before"] = round(load, 2)
    row["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    return row


def main() -> None:
    """The chosen executors at each size, then the comparison; writes ``scale.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--executors", nargs="+", default=list(EXECUTORS), choices=EXECUTORS,
                        help="re-measure these; the others' rows are kept from scale.json")
    args = parser.parse_args()
    data = require_data("eurosat_rgb")
    loopback = load_test_helper("loopback")
    path = RESULTS / "scale.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    rows: dict[str, Any] = previous.get("executors", {})
    for executor in args.executors:
        rows[executor] = {}
    for n in args.sizes:
        if "threads" in args.executors:
            rows["threads"][str(n)] = child("threads", n, None)
        if "spark_local" in args.executors:
            rows["spark_local"][str(n)] = child("spark_local", n, LOCAL_MASTER)
        if "spark_cluster" in args.executors:
            with loopback.spark_cluster(workers=2, cores=1, memory="2g") as master:
                rows["spark_cluster"][str(n)] = child("spark_cluster", n, master)
    big, small = str(max(args.sizes)), str(min(args.sizes))
    for executor in args.executors:
        runs = rows[executor]
        runs["driver_peak_rss_ratio"] = round(
            runs[big]["driver_peak_rss_mb"] / runs[small]["driver_peak_rss_mb"], 2)
        if runs[big]["driver_jvm_peak_rss_mb"]:
            runs["driver_jvm_peak_rss_ratio"] = round(
                runs[big]["driver_jvm_peak_rss_mb"] / runs[small]["driver_jvm_peak_rss_mb"], 2)
    for executor in ("spark_local", "spark_cluster"):
        if executor in args.executors:
            checks = matches(CACHE / f"threads-{big}", CACHE / f"{executor}-{big}", executor)
            rows[executor]["matches"] = checks
            rows[executor]["matches_threads"] = all(
                checks[k] for k in ("catalog", "pixels", "features", "index"))
    payload = {
        "data": "real: EuroSAT RGB (27,000 images, 64 px JPEG) and its first 270 per class",
        "model": "shipped feature model (EfficientNet-Lite0 ImageNet, 224 px, 512-d)",
        "clients": 1,
        "cluster": "Spark standalone on 127.0.0.1: one master, two workers of one core and "
                   "2 GB each, storage on local disk shared by the processes",
        "local": f"Spark {LOCAL_MASTER}: the executors are two task threads in the driver's "
                 "JVM, each with its Python worker",
        "machine": machine(),
        "executors": rows,
        "note": "features: bf16 autocast rounds by thread count; an in-process run with "
                "model.threads=1 equals the Spark runs' vectors exactly (max diff 0.0, checked "
                "on the 2,700 subset)",
        "goals": {"driver_peak_rss_ratio": 1.3, "store_bytes_ratio": 1.5,
                  "objects_per_1000_samples": 2},
    }
    for executor in EXECUTORS:  # each run's image store at the largest size
        key = "store" if executor == "threads" else f"store_{executor}"
        if executor in args.executors:
            payload[key] = store_figures(CACHE / f"{executor}-{big}", subset(data, int(big)),
                                         int(big))
        elif key in previous:
            payload[key] = previous[key]
    write_json("scale.json", payload)


if __name__ == "__main__":
    main()
