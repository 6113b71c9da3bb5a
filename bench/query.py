"""Query latency vs repository size and concurrency, next to exact search.

Claim (main paper, section 4.3.1, Figs. 8-9): with an IVF-PQ index the supplementary
sample query time stays about flat from 10k to 1M samples. Bars on this 2-core machine:
ANN step p99 <= 10 ms at 1M, full three-step query p99 <= 50 ms at 1M (one client),
recall@100 >= 0.95 against exact search, latency roughly flat from 100k to 1M.

Two corpora (``corpus`` in every row):

* ``real_views`` (the headline): the shipped feature model's 512-d encodings of random
  views of the real EuroSAT, UC Merced and BigEarthNet images (``bench/views.py``: crops
  of 25-100 % of the area, flips, 90-degree turns, mild colour jitter, at 64 px), each
  row labelled with its image's labels; queries are views of 200 images none of whose
  views is indexed. Sizes 10k, 100k and 1M are the corpus' first n views.
* ``perturbed`` (the older corpus, at 1M only, for comparison): EfficientNet-Lite0
  (ImageNet) features of all 27,000 EuroSAT and 2,100 UC Merced images, PCA-projected to
  512 dimensions, topped up with perturbed copies (``x + 0.5 g / sqrt(d)``, renormalised;
  cosine to the source about 0.9); queries are 200 more such copies. Every query lands in
  its source's tight cluster, which flatters recall and latency.

``corpora`` reports each corpus' structure at 1M (:func:`structure`): the share of a
vector's 10 nearest neighbours made from its own image, and the mean cosine to the first.

The label graph is the real one: Algorithm 1 merges of ``uc_merced_21``, ``eurosat_10``
and ``uc_merced_multilabel_17`` plus UC Merced co-occurrence (cached in
``bench/.cache/query_home``). Prototypes: K-means (4 per label) of the indexed vectors.
The index is the shipped shape with the shipped re-rank store (``retrieval.store``, fp16);
at 1M real views a ``store: flat`` (float32) row measures what fp16 costs in recall.

Measured per size (10k, 100k, 1M) and client count (1, 8, 32 threads issuing requests
back to back): ``ann`` = one IVF-PQ + exact re-rank search of k=100 (the corpus' held-out
queries); ``full`` = :func:`samplehub.retrieval.query.query_context` for one of the
ten common labels (filter, expansion, exact matches paged to 100, prototype matching of the
``max_prototype_labels`` nearest associated labels, all their prototypes in one batched
search, with the planner's choice); ``exact`` = flat search of the same queries, one
client, over the float32 vectors whatever the store. recall@100 of ``ann`` against
``exact``. The ``full`` rows are a serving context's
steady state: the first query of each label builds what the context memoises for that
label (its exact matches, its allowed index positions: work proportional to the label's
rows), so those ten cold queries run first and are reported apart as ``full_cold_*``.

Other jobs may share the 2 cores: every row records ``os.getloadavg()`` (1, 5 and 15
minutes, read when the row's measurements end) as ``load_avg``; latencies measured at a
load above the core count are inflated by waiting for a core, not by the index.

Writes ``bench/results/query.json``. Run: ``python bench/views.py`` once, then
``python bench/query.py [--sizes 10000 100000] [--corpora real_views]``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np
import pyarrow as pa
from common import REPO, RESULTS, machine, require_data, write_json

from samplehub.config import load_config
from samplehub.index.ivfpq import build_ivfpq_index, recall_at_k, search
from samplehub.index.lifecycle import index_shape
from samplehub.labels.graph import LabelGraph

CACHE = REPO / "bench" / ".cache"
HOME = CACHE / "query_home"
D = 512
K = 100
SIGMA = 0.5
DATASETS = {"eurosat": "eurosat_10", "ucmerced": "uc_merced_21"}  # bench name -> graph key
COMMON_LABELS = ("river", "forest", "highway_area", "residential_land", "industrial_land",
                 "agricultural", "beach", "sea_lake", "pasture", "building")
GRAPH_DATASETS = ["uc_merced_21", "eurosat_10", "uc_merced_multilabel_17"]
SIZES = (10_000, 100_000, 1_000_000)


def index_params(n: int) -> tuple[int, int, int, int, int]:
    """(nlist, pq m, nprobe, refine k_factor, max_codes) the product uses for ``n`` vectors.

    ``samplehub.index.lifecycle.index_shape`` with the shipped ``conf/retrieval`` settings:
    cells of ~100 vectors (nlist 100 at 10k, 1,000 at 100k, 10,000 at 1M) under an HNSW
    coarse quantizer, PQ64x8, nprobe 96 capped at 12,000 scanned codes, k_factor 8.
    """
    retrieval = load_config().retrieval
    nlist, m, _ = index_shape(n, D, retrieval)
    return nlist, m, retrieval.nprobe, retrieval.refine_factor, retrieval.max_codes


def real_features() -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Unit 512-d features of every real image, its dataset, class and relative path."""
    from hashing import _image_paths, load_features

    xs, datasets, classes, relpaths = [], [], [], []
    for name, key in DATASETS.items():
        x, y = load_features(name)
        paths, _, names = _image_paths(name)
        xs.append(x)
        datasets += [key] * len(x)
        classes += [names[c] for c in y]
        relpaths += [f"{p.parent.name}/{p.name}" for p in paths]
    x = np.concatenate(xs).astype(np.float32)
    x -= x.mean(axis=0)
    pca = faiss.PCAMatrix(x.shape[1], D)
    pca.train(x)
    return unit(pca.apply(x)), datasets, classes, relpaths


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def perturbed(x: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` perturbed copies of random rows of ``x`` and their source rows."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(x), n)
    noise = rng.standard_normal((n, x.shape[1]), dtype=np.float32) * (SIGMA / np.sqrt(x.shape[1]))
    return unit(x[source] + noise), source


def label_graph() -> LabelGraph:
    """The real label graph of the three taxonomy lists plus UC Merced co-occurrence."""
    from samplehub.labels.cooccurrence import read_ucmerced_multilabel
    from samplehub.labels.workflow import (
        add_cooccurrence_source,
        merge_taxonomy_datasets,
        open_semantics,
    )
    from samplehub.repository import Repository

    repo = Repository(load_config(["graph=embedded", f"home={HOME}"]))
    settings, store = repo.graph_settings, repo.labels
    if store.versions():
        return store.load()
    semantics = open_semantics(settings, HOME, repo.models)
    merge_taxonomy_datasets(store, settings, semantics, GRAPH_DATASETS)
    manifest = require_data("ucmerced_multilabel") / "ucmerced_multilabel/LandUse_Multilabeled.txt"
    graph, _ = add_cooccurrence_source(
        store, settings, read_ucmerced_multilabel(manifest), "ucmerced_multilabel"
    )
    return graph


def samples_table(datasets: list[str], labels: list[list[str]], relpaths: list[str]) -> pa.Table:
    """The samples columns the query reads (not georeferenced, as these JPEG chips)."""
    n = len(labels)
    return pa.table({
        "sample_id": pa.array(np.arange(n, dtype=np.int64)),
        "dataset": pa.array(datasets).dictionary_encode().cast(pa.string()),
        "relpath": pa.array(relpaths),
        "labels": pa.array(labels, pa.list_(pa.string())),
        "unified_labels": pa.array([[]] * n, pa.list_(pa.string())),
        "sensor": pa.array(["rgb"] * n),
        "time": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        **{c: pa.nulls(n, pa.float64()) for c in ("minx", "miny", "maxx", "maxy")},
        "hilbert": pa.nulls(n, pa.int64()),
        "footprint": pa.nulls(n, pa.binary()),
        "georeferenced": pa.array(np.zeros(n, dtype=bool)),
    })


def prototypes(graph: LabelGraph, xb: np.ndarray, datasets: list[str],
               labels: list[list[str]], k: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """K-means prototypes of each unified label's members (as the ``label_prototypes`` asset).

    Rows are keyed by their first label (every scene-classification row has one).
    """
    from samplehub.retrieval.prototypes import kmeans_prototypes

    keys = np.array([f"{d}/{c[0]}" for d, c in zip(datasets, labels, strict=True)])
    members: dict[str, list[np.ndarray]] = {}
    for key in np.unique(keys):
        target = graph.mapped_to(str(key))
        if target is not None:
            members.setdefault(target, []).append(np.flatnonzero(keys == key))
    out = {}
    for label, rows in members.items():
        centres, _ = kmeans_prototypes(xb[np.concatenate(rows)], k)
        out[label] = (np.arange(len(centres), dtype=np.int64), centres)
    return out


def latencies(call: Callable[[int], object], n_requests: int, clients: int) -> np.ndarray:
    """Per-request latency (ms) of ``call(i)`` with ``clients`` threads back to back.

    With several clients each client thread runs faiss on one OpenMP thread, as a serving
    worker's request threads do (``samplehub.api.serving``): OpenMP's thread count is per
    thread, and a team per client would oversubscribe the cores. One client keeps
    OpenMP's default team: alone on the machine, its batched search may use every core.
    """
    out = np.zeros(n_requests)
    counter = iter(range(n_requests))
    lock = threading.Lock()

    def client() -> None:
        if clients > 1:
            faiss.omp_set_num_threads(1)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            call(i)
            out[i] = (time.perf_counter() - start) * 1000

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@dataclass
class Corpus:
    """One benchmark repository: vectors, what each row shows, and held-out queries.

    Attributes:
        name: ``real_views`` or ``perturbed`` (module docstring).
        xb: unit vectors (n, 512) float32.
        source: the real image each row was made from (n,), for the structure report.
        datasets: graph dataset key of each row.
        labels: labels of each row.
        relpaths: a unique path per row.
        xq: held-out queries (200, 512).
    """

    name: str
    xb: np.ndarray
    source: np.ndarray
    datasets: list[str]
    labels: list[list[str]]
    relpaths: list[str]
    xq: np.ndarray


def real_views_corpus(n: int) -> Corpus:
    """The first ``n`` vectors of the real-view corpus (``bench/views.py``) and its queries."""
    import views

    c = views.load(n)
    keys = {**DATASETS, "bigearthnet_s2": "bigearthnet_s2"}
    images = [(keys[i.dataset], list(i.labels), i.relpath) for i in c.images]
    return Corpus(
        "real_views", c.xb, c.source.astype(np.int64),
        [images[s][0] for s in c.source], [images[s][1] for s in c.source],
        [f"{images[s][2]}#view{i}" for i, s in enumerate(c.source.tolist())], c.xq,
    )


def perturbed_corpus(n: int, x_real: np.ndarray, meta: tuple[list[str], ...]) -> Corpus:
    """Every real feature (or a sample of ``n``) topped up with perturbed copies."""
    datasets, classes, relpaths = meta
    rng = np.random.default_rng(n)
    base = np.arange(len(x_real))
    if n < len(x_real):
        base = np.sort(rng.choice(len(x_real), n, replace=False))
    extra, source = perturbed(x_real, n - len(base), seed=n)
    rows = np.concatenate([base, source])
    xq, _ = perturbed(x_real, 200, seed=12345)  # held-out queries near real images
    return Corpus(
        "perturbed", np.concatenate([x_real[base], extra]), rows,
        [datasets[r] for r in rows], [[classes[r]] for r in rows],
        [f"{relpaths[r]}#{i}" for i, r in enumerate(rows.tolist())], xq,
    )


def structure(corpus: Corpus, n_probe: int = 1000, k: int = 10) -> dict:
    """How clustered the corpus is: its vectors' exact nearest neighbours.

    ``own_source_at_10``: the mean fraction of a vector's 10 nearest neighbours (itself
    left out) made from the same real image; ``first_neighbour_cosine``: the mean cosine to
    the nearest one. Over ``n_probe`` seeded database vectors.
    """
    rows = np.random.default_rng(0).choice(len(corpus.xb), n_probe, replace=False)
    flat = faiss.IndexFlatIP(D)
    flat.add(corpus.xb)
    Dn, In = flat.search(corpus.xb[rows], k + 1)
    own = np.zeros(n_probe)
    first = np.zeros(n_probe)
    for i, (row, found, sims) in enumerate(zip(rows, In, Dn, strict=True)):
        keep = found != row
        others, other_sims = found[keep][:k], sims[keep][:k]
        own[i] = np.mean(corpus.source[others] == corpus.source[row])
        first[i] = other_sims[0]
    return {"corpus": corpus.name, "n": len(corpus.xb), "probe": n_probe,
            "own_source_at_10": round(float(own.mean()), 4),
            "first_neighbour_cosine": round(float(first.mean()), 4)}


def measure(corpus: Corpus, graph: LabelGraph, n_requests: int, store: str,
            client_counts: tuple[int, ...]) -> list[dict]:
    """Rows of one corpus and re-rank store for every client count."""
    from samplehub.labels.settings import graph_settings_from_config
    from samplehub.retrieval.context import QueryContext
    from samplehub.retrieval.query import query_context
    from samplehub.retrieval.search import IvfpqSearch
    from samplehub.retrieval.snapshot import SampleSnapshot
    from samplehub.retrieval.types import QuerySpec

    xb, xq, n = corpus.xb, corpus.xq, len(corpus.xb)
    nlist, m, nprobe, k_factor, max_codes = index_params(n)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    index = build_ivfpq_index(xb, np.arange(n), nlist, m, 8, refine=True, store=store)
    build_s = time.perf_counter() - start
    snapshot = SampleSnapshot.from_table(
        samples_table(corpus.datasets, corpus.labels, corpus.relpaths))
    vectors = IvfpqSearch.of(index, snapshot.sample_id)
    at_position = vectors.ids  # the index stores vectors by IVF cell; ids = corpus rows
    weights = graph_settings_from_config(load_config(["graph=embedded"])).association
    ctx = QueryContext(snapshot, graph, weights, vectors,
                       prototypes(graph, xb[at_position], [corpus.datasets[r] for r in at_position],
                                  [corpus.labels[r] for r in at_position]))
    config = load_config().retrieval
    specs = [QuerySpec(labels=(label,), k=K, exact_limit=K) for label in COMMON_LABELS]
    exact = faiss.IndexFlatIP(D)  # float32 exact search: the ground truth of every store
    exact.add(xb)
    _, I_exact = exact.search(xq, K)
    exact_ms = latencies(lambda i: exact.search(xq[i % len(xq) : i % len(xq) + 1], K),
                         min(n_requests, 50), 1)
    exact.reset()  # frees its copy of the vectors
    _, I = search(index, xq, K, nprobe, k_factor, max_codes)
    recall = recall_at_k(I, I_exact, K)
    cold = latencies(lambda i: query_context(ctx, specs[i], config), len(specs), 1)
    out = []
    for clients in client_counts:
        faiss.omp_set_num_threads(1 if clients > 1 else os.cpu_count() or 1)
        ann = latencies(lambda i: search(index, xq[i % len(xq) : i % len(xq) + 1], K, nprobe,
                                         k_factor, max_codes), n_requests, clients)
        full = latencies(lambda i: query_context(ctx, specs[i % len(specs)], config),
                         n_requests, clients)
        out.append({
            "corpus": corpus.name, "n": n, "clients": clients, "store": store,
            "ann_p50_ms": pct(ann, 50), "ann_p99_ms": pct(ann, 99),
            "full_p50_ms": pct(full, 50), "full_p99_ms": pct(full, 99),
            "full_cold_p50_ms": pct(cold, 50), "full_cold_max_ms": pct(cold, 100),
            "exact_p99_ms": pct(exact_ms, 99), "recall_at_100": round(recall, 4),
            "queries": len(xq),
            "cores": machine()["cores"], "l3_cache_mb": machine()["l3_cache_mb"],
            "refine_store_mb": round(index.store.code_size * n / 2**20),
            "nlist": nlist, "coarse": index.params.coarse, "pq_m": m, "nprobe": nprobe,
            "max_codes": max_codes,
            "k_factor": k_factor, "max_prototype_labels": config.max_prototype_labels,
            "build_s": round(build_s, 1),
            "load_avg": [round(v, 2) for v in os.getloadavg()],  # 1/5/15 min, after the row
        })
        print(out[-1], flush=True)
    return out


def pct(x: np.ndarray, q: float) -> float:
    """Percentile ``q`` of ``x`` rounded to 0.01 ms."""
    return round(float(np.percentile(x, q)), 2)


def main() -> None:
    """Measure every corpus, size and client count and write ``bench/results/query.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--corpora", nargs="+", default=["real_views", "perturbed"],
                        choices=["real_views", "perturbed"])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    require_data("eurosat_rgb", "ucmerced", "ucmerced_multilabel")
    graph = label_graph()
    shipped = load_config().retrieval.store
    corpora, rows = [], []
    for name in args.corpora:
        if name == "perturbed":
            x_real, *meta = real_features()
        for n in args.sizes:
            if name == "perturbed" and n < max(args.sizes):
                continue  # the older corpus: its largest size only, for comparison
            corpus = (real_views_corpus(n) if name == "real_views"
                      else perturbed_corpus(n, x_real, tuple(meta)))
            if n == max(args.sizes):
                corpora.append(structure(corpus))
                print(corpora[-1], flush=True)
            rows += measure(corpus, graph, args.requests, shipped, (1, 8, 32))
            if name == "real_views" and n == max(args.sizes) and shipped != "flat":
                rows += measure(corpus, graph, args.requests, "flat", (1,))
            del corpus
    path = RESULTS / "query.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    scale = previous.get("scale") if isinstance(previous, dict) else None  # bench/scale.py's
    write_json("query.json", {"machine": machine(), "corpora": corpora, "rows": rows,
                              **({"scale": scale} if scale else {})})


if __name__ == "__main__":
    main()
