"""Hamming search next to IVF-PQ on the same real-view vectors and queries, with quality.

Claim: at 1M vectors, for Hamming flat, Hamming IVF + DMCH Eq. 7 re-rank and IVF-PQ +
exact re-rank on the same queries: p50/p99 latency of one client, bytes per sample, recall@10
against exact float search and mAP@100 by label. A latency is only worth its quality: the
earlier corpus (perturbed copies of 29,100 features) gave Hamming a 0.20 ms p99 at a
recall@10 of 0.012.

Data (``corpus: real_views`` in every row): the first n vectors of the real-view corpus
(``bench/views.py``: the shipped feature model's 512-d encodings of random views of the
EuroSAT, UC Merced and BigEarthNet images), each labelled with its image's labels, qualified
by dataset (EuroSAT ``Forest`` and UC Merced ``forest`` are different labels; a BigEarthNet
patch carries several CORINE labels). Queries: the corpus' 200 query views, views of
images none of whose views is indexed.

DMCH (``../shared/papers/dmch-deep-metric-category-hashing.txt``, 64 bits) trains on a
seeded sample of ``--train`` indexed views (20,000), class = its image's first label, for
``--epochs`` epochs (3; the paper trains up to 800: views are harder than clean features,
BatchAll keeps many triplets and a batch of 90 takes about a second on 2 cores), then codes
every indexed view and the queries. Indexes:
:class:`ml.hashing.serving.HammingIndex` flat (Hamming ranking alone; ties in index order)
and IVF (nlist 4 sqrt(n), nprobe 16, the Hamming top 100 re-ranked by Eq. 7, as
``--index hash`` searches above ``hashing.ivf_min_size``);
:func:`samplehub.index.ivfpq.build_ivfpq_index` in the shape and with the re-rank store
``bench/query.py`` ships for n (nlist ~ n / 100 under an HNSW coarse quantizer, PQ64x8,
nprobe 96 capped at 12,000 codes, k_factor 8, fp16 store).

Measured per index, one client (one query at a time on one thread), the same 200 queries:

* ``p50_ms`` / ``p99_ms``: a k=10 search; ``k100_p50_ms`` / ``k100_p99_ms``: the k=100
  search mAP@100 scores. Hamming times exclude coding the query (a DMCH forward pass),
  reported once as ``dmch_encode_p50_ms``;
* ``recall@10_vs_float_exact``: share of exact float search's top 10 (faiss flat inner
  product over the float32 vectors) in the top 10;
* ``map@100_by_label``: DMCH's mAP (Sec. 4.2) over the top 100 results, each query's AP
  normalised by the relevant results among them (:func:`ml.metrics.average_precision`), a
  result relevant when its image shares a label with the query's image. Exact float
  search's own mAP@100 is the ``exact_float`` row: what the features allow at this k.

Writes ``bench/results/hamming.json`` (with the machine's load average before and after).
Run: ``python bench/views.py`` once, then ``python bench/hamming_vs_ivfpq.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
import views
from common import machine, write_json
from query import index_params

from ml.hashing.serving import HammingIndex
from ml.hashing.train import encode_dmch, train_dmch
from ml.metrics import average_precision
from samplehub.config import load_config
from samplehub.index.ivfpq import build_ivfpq_index, search

K = 10
K_MAP = 100
BITS = 64
TOP_M = 100
NPROBE_HAMMING = 16
CORPUS = "real_views"
CLIENTS = 1


def latency(call: Callable[[int], object], nq: int, prefix: str = "") -> dict[str, float]:
    """p50 / p99 (ms) of ``call(i)`` for query i, one at a time on one thread."""
    faiss.omp_set_num_threads(1)
    call(0)
    times = []
    for i in range(nq):
        start = time.perf_counter()
        call(i)
        times.append(1000 * (time.perf_counter() - start))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {f"{prefix}p50_ms": round(float(np.percentile(times, 50)), 3),
            f"{prefix}p99_ms": round(float(np.percentile(times, 99)), 3)}


def recall(I: np.ndarray, I_exact: np.ndarray, k: int = K) -> float:
    """Mean fraction of the exact top-k found in the top k."""
    found = [len(set(a[:k]) & set(b[:k])) / k for a, b in zip(I, I_exact, strict=True)]
    return round(float(np.mean(found)), 4)


class Relevance:
    """Label relevance between query views and indexed views, by their source images."""

    def __init__(self, corpus: views.Corpus) -> None:
        self.images = corpus.images
        self.labels = [frozenset(f"{i.dataset}/{label}" for label in i.labels)
                       for i in corpus.images]
        self.source = corpus.source
        self.query_source = corpus.query_source

    def classes(self) -> np.ndarray:
        """Class id of each indexed view: its image's first label (DMCH's training labels)."""
        firsts = [f"{i.dataset}/{i.labels[0]}" if i.labels else "" for i in self.images]
        names = {name: c for c, name in enumerate(sorted(set(firsts)))}
        per_image = np.array([names[f] for f in firsts])
        return per_image[self.source]

    def map_at_k(self, I: np.ndarray) -> float:
        """mAP@k of results ``I`` (nq, k) (view rows, -1 for none) by label."""
        ranked = np.array([
            [r >= 0 and bool(self.labels[q] & self.labels[self.source[r]]) for r in row]
            for q, row in zip(self.query_source, I, strict=True)
        ], dtype=bool)
        return round(float(average_precision(ranked).mean()), 4)


def main() -> None:
    """Train DMCH on real views, build the three indexes, write ``bench/results/hamming.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed views")
    parser.add_argument("--train", type=int, default=20_000, help="DMCH training views")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    before = machine()
    corpus = views.load(args.n)
    xb, xq, n, nq = corpus.xb, corpus.xq, len(corpus.xb), len(corpus.xq)
    rel = Relevance(corpus)
    y = rel.classes()
    train = np.sort(np.random.default_rng(0).choice(n, min(args.train, n), replace=False))
    start = time.perf_counter()
    model = train_dmch(xb[train], y[train], BITS, epochs=args.epochs).model
    train_s = time.perf_counter() - start
    codes, values = encode_dmch(model, xb)
    codes_q, values_q = encode_dmch(model, xq)
    encode = latency(lambda i: encode_dmch(model, xq[i : i + 1]), nq)
    _, I_exact = faiss.knn(xq, xb, K_MAP, metric=faiss.METRIC_INNER_PRODUCT)
    common = {"corpus": CORPUS, "clients": CLIENTS, "threads": 1}
    out: dict[str, Any] = {
        "corpus": CORPUS, "clients": CLIENTS, "n": n, "bits": BITS, "k": K, "k_map": K_MAP,
        "queries": nq, "threads": 1, "d": xb.shape[1], "dmch_train_views": len(train),
        "dmch_classes": len(np.unique(y)), "dmch_epochs": args.epochs,
        "dmch_train_s": round(train_s, 1), "dmch_encode_p50_ms": encode["p50_ms"],
        "relevance": "the result's image shares a (dataset-qualified) label with the query's",
        "machine_before": before,
    }
    out["exact_float"] = {**common, "map@100_by_label": rel.map_at_k(I_exact)}

    flat = HammingIndex(BITS, ivf_min_size=n + 1).build(codes)
    out["hamming_flat"] = {
        **common,
        **latency(lambda i: flat.search(codes_q[i : i + 1], K), nq),
        **latency(lambda i: flat.search(codes_q[i : i + 1], K_MAP), nq, "k100_"),
        "bytes_per_sample": flat.bytes_per_sample,
        "recall@10_vs_float_exact": recall(flat.search(codes_q, K)[1], I_exact),
        "map@100_by_label": rel.map_at_k(flat.search(codes_q, K_MAP)[1]),
    }
    start = time.perf_counter()
    ivf = HammingIndex(BITS, ivf_min_size=1, nprobe=NPROBE_HAMMING).build(codes, values=values)
    build_s = time.perf_counter() - start

    def hamming(i: int | slice, k: int) -> np.ndarray:
        rows = slice(i, i + 1) if isinstance(i, int) else i
        return ivf.search_rerank(codes_q[rows], values_q[rows], k, max(TOP_M, k))[1]

    out["hamming_ivf_rerank_eq7"] = {
        **common,
        **latency(lambda i: hamming(i, K), nq),
        **latency(lambda i: hamming(i, K_MAP), nq, "k100_"),
        "bytes_per_sample": ivf.bytes_per_sample,
        "nlist": ivf.index.nlist, "nprobe": NPROBE_HAMMING, "top_m": TOP_M,
        "build_s": round(build_s, 1),
        "recall@10_vs_float_exact": recall(hamming(slice(None), K), I_exact),
        "map@100_by_label": rel.map_at_k(hamming(slice(None), K_MAP)),
    }
    del codes, values  # the IVF index keeps its own packed copy and float16 values
    nlist, m, nprobe, k_factor, max_codes = index_params(n)
    store = load_config().retrieval.store
    start = time.perf_counter()
    index = build_ivfpq_index(xb, np.arange(n), nlist, m, 8, refine=True, store=store)
    build_s = time.perf_counter() - start

    def ivfpq(i: int | slice, k: int) -> np.ndarray:
        rows = slice(i, i + 1) if isinstance(i, int) else i
        return search(index, xq[rows], k, nprobe, k_factor, max_codes)[1]

    out["ivfpq_refine"] = {
        **common,
        **latency(lambda i: ivfpq(i, K), nq),
        **latency(lambda i: ivfpq(i, K_MAP), nq, "k100_"),
        "bytes_per_sample": m + 8 + index.store.code_size,
        "bytes_per_sample_without_refine": m + 8,
        "nlist": nlist, "coarse": index.params.coarse, "pq_m": m, "store": store,
        "nprobe": nprobe, "max_codes": max_codes, "k_factor": k_factor,
        "build_s": round(build_s, 1),
        "recall@10_vs_float_exact": recall(ivfpq(slice(None), K), I_exact),
        "map@100_by_label": rel.map_at_k(ivfpq(slice(None), K_MAP)),
    }
    out["machine_after"] = machine()
    out["load_avg"] = list(os.getloadavg())
    write_json("hamming.json", out)
    print(out)


if __name__ == "__main__":
    main()
