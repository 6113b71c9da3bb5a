"""The IVF-PQ search settings, chosen on a validation split of the real-view corpus.

``conf/retrieval`` ships ``nprobe``, ``max_codes`` and ``refine_factor``; they set both the
work of one search and its recall@100 against exact search. They are chosen here, never on
the 200 held-out query views that ``bench/query.py`` reports on.

Validation split: 200 seeded vectors of the indexed 1M real views (``bench/views.py``). A
validation query is a view of an indexed image, so each search excludes every view of
that image (a faiss selector over their index positions, in the approximate search and in
the exact ground truth alike): as for the held-out queries, none of the query image's
views can be found. The index is the shipped shape and re-rank store, built as
``bench/query.py`` builds it.

Rule: the cheapest setting (median single-thread CPU time of one search of k=100) whose
validation recall@100 is at least ``TARGET`` (0.95, the goal, plus a 0.01 margin for the
difference between two samples of 200 queries).

Writes ``bench/results/tuning.json`` (every setting tried, the chosen one and the rule).
Run: ``python bench/views.py`` once, then ``python bench/tune_search.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np
from common import machine, write_json

from samplehub.config import load_config
from samplehub.index.ivfpq import build_ivfpq_index, search_parameters
from samplehub.index.lifecycle import index_shape

K = 100
QUERIES = 200
TARGET = 0.96
GRID = [(nprobe, max_codes, k_factor)
        for nprobe in (64, 96, 128, 160, 192)
        for max_codes in (0, 8000, 12000, 16000)
        for k_factor in (8,)] + [(96, 8000, 16), (128, 12000, 16)]


def validation_split(source: np.ndarray, seed: int = 123) -> tuple[np.ndarray, list[np.ndarray]]:
    """Seeded query rows and, for each, every row made from the same image."""
    rows = np.random.default_rng(seed).choice(len(source), QUERIES, replace=False)
    order = np.argsort(source, kind="stable")
    bounds = np.searchsorted(source[order], np.arange(int(source.max()) + 2))
    return rows, [order[bounds[s] : bounds[s + 1]] for s in source[rows].tolist()]


def excluding(positions: np.ndarray) -> tuple[object, object]:
    """A selector of every position but ``positions`` (and the batch it wraps, kept alive)."""
    batch = faiss.IDSelectorBatch(positions)
    return faiss.IDSelectorNot(batch), batch


def main() -> None:
    """Build the 1M index, sweep the grid on the validation split, write the choice."""
    import views

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    corpus = views.load(args.n)
    xb, n = corpus.xb, len(corpus.xb)
    retrieval = load_config().retrieval
    nlist, m, nbits = index_shape(n, xb.shape[1], retrieval)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index = build_ivfpq_index(xb, np.arange(n), nlist, m, nbits, refine=True,
                              store=retrieval.store)  # type: ignore[arg-type]
    position = np.empty(n, np.int64)
    position[index.ids] = np.arange(n)  # ids are corpus rows; the index stores by cell
    rows, same_image = validation_split(corpus.source)
    xq = xb[rows]
    exact = faiss.IndexFlatIP(xb.shape[1])
    exact.add(xb)
    truth = []
    for i, excluded in enumerate(same_image):
        sel, _keep = excluding(excluded)
        params = faiss.SearchParameters()
        params.sel = sel
        truth.append(set(exact.search(xq[i : i + 1], K, params=params)[1][0].tolist()))
    exact.reset()
    faiss.omp_set_num_threads(1)  # a serving worker's setting: one search, one thread
    selectors = [excluding(position[e]) for e in same_image]
    tried = []
    for nprobe, max_codes, k_factor in GRID:
        recall, cpu_ms = [], []
        for i in range(QUERIES):
            params = search_parameters(index, nprobe, k_factor, max_codes, selectors[i][0])
            start = time.process_time()
            _, found = index.inner.search(xq[i : i + 1], K, params=params)
            cpu_ms.append((time.process_time() - start) * 1e3)
            ids = index.ids[found[0][found[0] >= 0]]
            recall.append(len(truth[i] & set(ids.tolist())) / K)
        tried.append({"nprobe": nprobe, "max_codes": max_codes, "k_factor": k_factor,
                      "recall_at_100": round(float(np.mean(recall)), 4),
                      "cpu_ms_p50": round(float(np.median(cpu_ms)), 3)})
        print(tried[-1], flush=True)
    passing = [t for t in tried if t["recall_at_100"] >= TARGET]
    chosen = min(passing, key=lambda t: t["cpu_ms_p50"]) if passing else None
    write_json("tuning.json", {
        "claim": "conf/retrieval's search settings are chosen on a validation split, not on "
                 "the evaluation queries",
        "data": f"real_views: the first {n:,} vectors of bench/views.py; 200 seeded indexed "
                "views as queries, each with its own image's views excluded",
        "clients": 1, "index": {"nlist": nlist, "pq_m": m, "store": retrieval.store},
        "rule": f"least median CPU per search among settings with validation recall@100 >= "
                f"{TARGET}",
        "chosen": chosen, "tried": tried, "machine": machine(),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    })


if __name__ == "__main__":
    main()
