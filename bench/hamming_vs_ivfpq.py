"""Hamming search over 1M hash codes next to the repository's IVF-PQ index, same vectors.

Claim: Hamming search over 1M codes, p99 latency and bytes per sample, next to IVF-PQ from
the retrieval benchmark in the same run.

Data: the 29,100 real EfficientNet-Lite0 features of EuroSAT and UC Merced, PCA-projected to
512-d and topped up to 1M with perturbed copies (``bench/query.py``'s ``real_features`` and
``perturbed``). DMCH (``../shared/papers/dmch-deep-metric-category-hashing.txt``, 64 bits)
is trained on the real features with their class labels (few epochs) and codes all 1M
vectors; the Hamming indexes are :class:`ml.hashing.serving.HammingIndex` (flat, and IVF
with the Eq. 7 re-rank); IVF-PQ is :func:`samplehub.index.ivfpq.build_ivfpq_index` with the
shape ``bench/query.py`` uses for the same size (the recorded run at 1M, as in
``bench/results/hamming.json``: nlist 10,000 under an HNSW coarse quantizer, PQ64x8, exact
refine, nprobe 96 capped at 8,000 scanned codes, k_factor 8).
Queries: 300 held-out perturbed real features, one at a time on one thread, k = 10.
recall@10 is measured against exact cosine search of the float vectors.

Writes ``bench/results/hamming.json`` (with the machine's load average before and after).
Run: ``.venv/bin/python bench/hamming_vs_ivfpq.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from common import machine, require_data, write_json
from query import index_params, perturbed, real_features

from ml.hashing.serving import HammingIndex
from ml.hashing.train import encode_dmch, train_dmch
from samplehub.index.ivfpq import build_ivfpq_index, search

K = 10
BITS = 64
TOP_M = 100


def p99(call: Callable[[int], object], nq: int) -> dict[str, float]:
    """Latency percentiles (ms) of ``call(i)`` for query i, one at a time on one thread."""
    faiss.omp_set_num_threads(1)
    call(0)
    times = []
    for i in range(nq):
        start = time.perf_counter()
        call(i)
        times.append(1000 * (time.perf_counter() - start))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3)}


def recall(I: np.ndarray, I_exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found."""
    found = [len(set(a) & set(b)) / K for a, b in zip(I, I_exact, strict=True)]
    return round(float(np.mean(found)), 4)


def main() -> None:
    """Train DMCH, build both Hamming indexes and IVF-PQ, write ``bench/results/hamming.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    require_data("ucmerced", "eurosat_rgb")
    before = machine()
    x_real, _, classes, _ = real_features()
    names = sorted(set(classes))
    y = np.array([names.index(c) for c in classes])
    start = time.perf_counter()
    model = train_dmch(x_real, y, BITS, epochs=args.epochs).model
    train_s = time.perf_counter() - start
    extra, _ = perturbed(x_real, args.n - len(x_real), seed=1)
    xb = np.concatenate([x_real, extra])
    del extra
    xq, _ = perturbed(x_real, 300, seed=2)
    codes, values = encode_dmch(model, xb)
    codes_q, values_q = encode_dmch(model, xq)
    _, I_exact = faiss.knn(xq, xb, K, metric=faiss.METRIC_INNER_PRODUCT)
    out: dict[str, Any] = {"n": args.n, "bits": BITS, "k": K, "queries": len(xq), "threads": 1,
                           "d": xb.shape[1], "dmch_epochs": args.epochs,
                           "dmch_train_s": round(train_s, 1), "machine_before": before}
    flat = HammingIndex(BITS, ivf_min_size=args.n + 1).build(codes)
    nq = len(xq)
    out["hamming_flat"] = {**p99(lambda i: flat.search(codes_q[i : i + 1], K), nq),
                           "bytes_per_sample": flat.bytes_per_sample,
                           "recall@10_vs_float_exact": recall(flat.search(codes_q, K)[1], I_exact)}
    start = time.perf_counter()
    ivf = HammingIndex(BITS, ivf_min_size=1, nprobe=16).build(codes, values=values)
    build_s = time.perf_counter() - start
    out["hamming_ivf_rerank_eq7"] = {
        **p99(lambda i: ivf.search_rerank(codes_q[i : i + 1], values_q[i : i + 1], K, TOP_M), nq),
        "bytes_per_sample": ivf.bytes_per_sample,
        "nlist": ivf.index.nlist, "nprobe": 16, "top_m": TOP_M, "build_s": round(build_s, 1),
        "recall@10_vs_float_exact": recall(ivf.search_rerank(codes_q, values_q, K, TOP_M)[1],
                                           I_exact),
    }
    nlist, m, nprobe, k_factor, max_codes = index_params(args.n)
    start = time.perf_counter()
    index = build_ivfpq_index(xb, np.arange(args.n), nlist, m, 8, refine=True)
    build_s = time.perf_counter() - start
    out["ivfpq_refine"] = {
        **p99(lambda i: search(index, xq[i : i + 1], K, nprobe, k_factor, max_codes), nq),
        "bytes_per_sample": m + 8 + 4 * xb.shape[1],
        "bytes_per_sample_without_refine": m + 8,
        "nlist": nlist, "coarse": index.params.coarse, "pq_m": m, "nprobe": nprobe,
        "max_codes": max_codes, "k_factor": k_factor,
        "build_s": round(build_s, 1),
        "recall@10_vs_float_exact": recall(search(index, xq, K, nprobe, k_factor, max_codes)[1],
                                           I_exact),
    }
    out["machine_after"] = machine()
    out["load_avg"] = list(os.getloadavg())
    write_json("hamming.json", out)
    print(out)


if __name__ == "__main__":
    main()
