"""Measure the Hamming index against IVF-PQ on the catalog's own labelled samples.

``index="auto"`` searches the Hamming index only where it measured better than IVF-PQ on
this catalog (:func:`samplehub.retrieval.planner.choose_index`); this module takes that
measurement and keeps it beside the Hamming indexes, in ``<home>/index/hash/comparison.json``.

Protocol: a seeded probe of ``hashing.compare_probe`` catalog samples that both indexes
hold, that carry a label, and that the champion hash model did not train on (DMCH trains
on the database part of its dataset's validation split, DUWH on everything but its
queries: ``samplehub.models.hash_model.validation_split``), so the hash model is not
scored on its own training data. Each probe sample's stored feature queries both indexes
for its ``hashing.compare_k`` nearest other samples (the sample itself left out):

* mAP@k by label, the mAP of DMCH Sec. 4.2
  (``../shared/papers/dmch-deep-metric-category-hashing.txt``) over the top k, a result
  relevant when it shares one of the query's catalog labels (``<dataset>/<label>``);
* recall@k against exact search of the stored float vectors (the IVF-PQ re-rank store);
* latency of one query, the two indexes taking turns query by query so that both see the
  same machine load; the Hamming query includes coding the feature with the hash model,
  as a query's does.

Both indexes answer as the query searches them: IVF-PQ with ``retrieval.nprobe``,
``refine_factor`` and ``max_codes``; the Hamming index with its Hamming top
``max(hashing.top_m, k)`` re-ranked by DMCH Eq. 7.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.metrics import average_precision
from samplehub.config import SampleHubConfig
from samplehub.errors import IndexNotTrainedError, SampleHubError
from samplehub.index.ivfpq import IvfpqIndex, recall_at_k, search
from samplehub.index.lifecycle import drop_own, load_ivfpq_index
from samplehub.repository import Repository
from samplehub.retrieval.planner import IndexComparison, IndexQuality

log = logging.getLogger(__name__)

COMPARISON_FILE = "comparison.json"


def comparison_path(config: SampleHubConfig) -> Path:
    """``<home>/index/hash/comparison.json``, beside the Hamming index folders."""
    return config.home_path / "index" / "hash" / COMPARISON_FILE


def load_comparison(config: SampleHubConfig) -> IndexComparison | None:
    """The latest saved comparison, None if none was measured."""
    path = comparison_path(config)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return IndexComparison.from_dict(json.loads(text))


def save_comparison(config: SampleHubConfig, comparison: IndexComparison) -> Path:
    """Write ``comparison`` in one atomic replace (a query never reads half a file)."""
    path = comparison_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(comparison.as_dict(), indent=2))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class ComparisonUpdate:
    """What one :func:`update_index_comparison` did.

    Attributes:
        comparison: the new measurement, None when none was taken.
        skipped: why none was taken, None when one was.
        path: the comparison file.
    """

    comparison: IndexComparison | None
    skipped: str | None
    path: Path


def update_index_comparison(repo: Repository) -> ComparisonUpdate:
    """Measure the champion's Hamming index against the IVF-PQ index and save the result.

    Without an IVF-PQ index there is nothing to compare with; the old file, if any, stays
    and the planner finds it stale (:func:`~samplehub.retrieval.planner.choose_index`).

    Raises:
        IndexNotTrainedError: no champion hash model or no Hamming index of it.
    """
    from samplehub.models.feature_model import model_version

    path = comparison_path(repo.config)
    version = model_version(repo.config)
    try:
        ivfpq = load_ivfpq_index(repo, version, mmap=repo.config.retrieval.mmap)
    except IndexNotTrainedError:
        return ComparisonUpdate(
            None, f"no IVF-PQ index of {version} yet to compare with (ivfpq_index)", path
        )
    comparison = measure_index_comparison(repo, ivfpq)
    if comparison is None:
        return ComparisonUpdate(
            None, "no labelled sample outside the hash model's training set is in both "
            "indexes to probe", path,
        )
    save_comparison(repo.config, comparison)
    log.info("Hamming vs IVF-PQ: %s", comparison.summary())
    return ComparisonUpdate(comparison, None, path)


def refresh_index_comparison(repo: Repository) -> ComparisonUpdate:
    """Measure again after the IVF-PQ index changed, if a comparison was ever measured.

    The ``hash_index`` asset takes the first measurement; the ``ivfpq_index`` asset calls
    this, so that a comparison taken before IVF-PQ caught up with new samples (which
    :func:`~samplehub.retrieval.planner.choose_index` must ignore) is replaced by one of
    the served indexes. Without a loadable Hamming index nothing is measured, and the old
    comparison stays for the planner to find stale.
    """
    path = comparison_path(repo.config)
    if not path.is_file():
        return ComparisonUpdate(None, "never measured (the hash_index asset measures first)",
                                path)
    try:
        return update_index_comparison(repo)
    except IndexNotTrainedError as exc:
        # a retrained champion without codes yet: its hash_index run will measure
        return ComparisonUpdate(None, f"no Hamming index to measure: {exc}", path)


def measure_index_comparison(
    repo: Repository,
    ivfpq: IvfpqIndex,
    probe: int | None = None,
    k: int | None = None,
    seed: int = 0,
) -> IndexComparison | None:
    """The comparison of the module docstring, measured now.

    Args:
        repo: the repository (its champion hash model and Hamming index).
        ivfpq: the IVF-PQ index of the current feature model, built with refine (its
            store gives the probe features and the exact reference).
        probe: probe queries; None uses ``hashing.compare_probe``.
        k: results per query; None uses ``hashing.compare_k``; capped below the index size.
        seed: seed of the probe sample.

    Returns:
        Both indexes' numbers and what was measured; None when no labelled sample outside
        the hash model's training set is in both indexes.

    Raises:
        IndexNotTrainedError: no champion hash model or no Hamming index of it.
        SampleHubError: the IVF-PQ index keeps no vectors.
    """
    from samplehub.index.hamming import load_hash_index
    from samplehub.models.feature_model import model_version
    from samplehub.models.hash_model import load_hash_model

    h, r = repo.config.hashing, repo.config.retrieval
    model = load_hash_model(repo.config, models=repo.models)
    hamming = load_hash_index(repo.config, model.model_version)
    store = ivfpq.store
    if store is None:
        raise SampleHubError(
            "the IVF-PQ index keeps no vectors (refine=False), so the comparison has no "
            "exact reference; rebuild it with the ivfpq_index asset"
        )
    ivf_ids = ivfpq.ids
    labels = CatalogLabels.read(repo)
    candidates = np.intersect1d(ivf_ids, hamming.ids)
    candidates = candidates[labels.labelled(candidates)]
    candidates = np.setdiff1d(candidates, trained_ids(repo, model.method))
    if not len(candidates):
        return None
    k = max(1, min(k or h.compare_k, ivfpq.ntotal - 1, len(hamming) - 1))
    nq = min(probe or h.compare_probe, len(candidates))
    own = np.sort(np.random.default_rng(seed).choice(candidates, nq, replace=False))
    order = np.argsort(ivf_ids)
    positions = order[np.searchsorted(ivf_ids, own, sorter=order)]
    xq = np.stack([store.reconstruct(int(p)) for p in positions]).astype(np.float32)

    top_m = max(h.top_m, k + 1)
    I_hash = np.full((nq, k + 1), -1, np.int64)
    I_ivf = np.full((nq, k + 1), -1, np.int64)
    ms_hash, ms_ivf = np.zeros(nq), np.zeros(nq)
    for i in range(nq):  # in turns: both indexes see the same load
        start = time.perf_counter()
        _, found = search(ivfpq, xq[i : i + 1], k + 1, r.nprobe, r.refine_factor, r.max_codes)
        ms_ivf[i] = 1000 * (time.perf_counter() - start)
        I_ivf[i, : found.shape[1]] = found[0]
        start = time.perf_counter()
        codes, values = model.encode(xq[i : i + 1])
        _, found = hamming.search_rerank(codes, values, k + 1, top_m)
        ms_hash[i] = 1000 * (time.perf_counter() - start)
        I_hash[i, : found.shape[1]] = found[0]
    _, exact_positions = store.search(xq, k + 1)
    I_exact = np.where(exact_positions >= 0, ivf_ids[np.maximum(exact_positions, 0)], -1)

    own_col = own[:, None]
    I_exact = drop_own(I_exact, own_col, k)

    def quality(I: np.ndarray, ms: np.ndarray) -> IndexQuality:
        top = drop_own(I, own_col, k)
        return IndexQuality(
            map_at_k=round(labels.map_at_k(own, top), 4),
            recall_at_k=round(recall_at_k(top, I_exact, k), 4),
            p50_ms=round(float(np.percentile(ms, 50)), 4),
            p99_ms=round(float(np.percentile(ms, 99)), 4),
        )

    return IndexComparison(
        hash=quality(I_hash, ms_hash),
        ivfpq=quality(I_ivf, ms_ivf),
        k=k,
        probe=nq,
        seed=seed,
        feature_model=model_version(repo.config),
        ivfpq_ntotal=ivfpq.ntotal,
        hash_model=model.model_version,
        hash_ntotal=len(hamming),
        hash_kind=hamming.kind,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dataclass(frozen=True)
class CatalogLabels:
    """The catalog's labels by sample id, qualified by dataset (``<dataset>/<label>``).

    Only the rows asked for become Python sets, so a million-sample catalog costs its
    columns, not a million sets.

    Attributes:
        ids: sample ids, ascending (n,).
        rows: the table row of each of ``ids`` (n,).
        table: ``sample_id``, ``dataset`` and ``labels`` of the samples table.
    """

    ids: np.ndarray
    rows: np.ndarray
    table: pa.Table

    @classmethod
    def read(cls, repo: Repository) -> CatalogLabels:
        """The labels of every catalogued sample."""
        table = repo.catalog.read("samples", columns=["sample_id", "dataset", "labels"])
        ids = table.column("sample_id").to_numpy().astype(np.int64)
        order = np.argsort(ids, kind="stable")
        return cls(ids[order], order, table)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Table rows of ``ids``, -1 for -1 or an id not catalogued."""
        if not len(self.ids):
            return np.full(len(ids), -1, np.int64)
        slot = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return np.where((ids >= 0) & (self.ids[slot] == ids), self.rows[slot], -1)

    def labelled(self, ids: np.ndarray) -> np.ndarray:
        """(n,) whether each of ``ids`` is catalogued with at least one label."""
        counts = pc.fill_null(pc.list_value_length(self.table.column("labels")), 0).to_numpy()
        rows = self._rows(ids)
        return (rows >= 0) & (counts[np.maximum(rows, 0)] > 0)

    def of(self, ids: np.ndarray) -> list[frozenset[str]]:
        """The qualified labels of ``ids`` (empty for -1 or an id not catalogued)."""
        rows = self._rows(np.asarray(ids, np.int64))
        known = np.unique(rows[rows >= 0])
        part = self.table.take(pa.array(known))
        names = pc.fill_null(part.column("labels"), []).to_pylist()
        sets = {
            int(row): frozenset(f"{dataset}/{name}" for name in row_names)
            for row, dataset, row_names in zip(
                known, part.column("dataset").to_pylist(), names, strict=True)
        }
        return [sets.get(int(row), frozenset()) for row in rows]

    def map_at_k(self, queries: np.ndarray, I: np.ndarray) -> float:
        """mAP@k of results ``I`` (nq, k) for query ids ``queries`` (nq,), by label."""
        if not len(queries):
            return 0.0
        query_labels = self.of(queries)
        found = self.of(I.ravel())
        k = I.shape[1]
        ranked = np.array(
            [[bool(q & r) for r in found[i * k : (i + 1) * k]] for i, q in enumerate(query_labels)],
            dtype=bool,
        )
        return float(average_precision(ranked).mean())


def trained_ids(repo: Repository, method: str) -> np.ndarray:
    """Sample ids the champion hash model of ``method`` trained on, as its split picks them.

    The split (``samplehub.models.hash_model.validation_split``) is recomputed over the
    training dataset named by the champion's run (its ``dataset`` tag) with the current
    ``hashing`` settings. A dataset that grew since training splits differently, so then
    a few samples the model trained on may be probed. Empty when the run names no dataset.
    """
    from samplehub.models.hash_model import (
        DATASET_TAG,
        champion,
        dataset_features,
        validation_split,
    )

    found = champion(repo.config, method)
    dataset = None if found is None else found.tags.get(DATASET_TAG)
    if dataset is None:
        log.warning("the champion hash model names no training dataset; probing every sample")
        return np.zeros(0, np.int64)
    h = repo.config.hashing
    data = dataset_features(repo, dataset)
    queries, database = validation_split(data.y, h.val_fraction, h.val_max_per_class)
    if method == "dmch":
        return data.ids[database]
    return np.delete(data.ids, queries)
