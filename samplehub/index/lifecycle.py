"""The IVF-PQ index of the repository's features: build, grow, retrain, measure, load.

Main paper (``../shared/papers/sample-repository-label-semantics-visual-retrieval.txt``),
section 3.4.2: image features are searched through an IVF-PQ index. This module keeps one
index per feature model version under ``<home>/index/ivfpq/<model_version>/``
(``index.faiss`` + ``index.json``, written atomically by :func:`save_index`):

* the first :func:`update_ivfpq_index` trains and builds it from the ``features`` table;
* a later call adds only the ids the index does not hold yet (a new dataset's features);
* once the index has grown by ``config.retrieval.retrain_growth`` since its quantisers
  were trained, it is rebuilt on everything (new IVF cells and PQ codebooks).

Index shape: ``nlist = min(config nlist, suggest_nlist(nb, config cell_size))`` (cells of
about ``cell_size`` vectors, an HNSW coarse quantizer over them) and ``nbits = min(config
pq_nbits, floor(log2 nb))`` so a small repository (a test fixture, a first dataset) can
still train; the next retrain restores the configured shape as the repository grows.
:func:`index_recall` measures recall@k of the index against exact search on a probe set.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samplehub.catalog import Catalog
from samplehub.catalog.vectors import vector_rows
from samplehub.config import RetrievalConfig, SampleHubConfig
from samplehub.errors import ConfigError, IndexNotTrainedError
from samplehub.executors import map_batch
from samplehub.feature_store import load_features
from samplehub.index.files import drop_stagings
from samplehub.index.ivfpq import (
    STORES,
    IvfpqIndex,
    IvfpqParams,
    add_to_index,
    build_ivfpq_index,
    exact_search,
    from_bytes,
    indexed_ids,
    load_index,
    merge_into,
    needs_retrain,
    recall_at_k,
    save_index,
    search,
    stored_vectors,
    suggest_nlist,
    to_bytes,
    train_ivfpq_index,
    training_sample,
)
from samplehub.models.feature_model import model_version as current_model_version
from samplehub.repository import Repository

Action = Literal["built", "added", "retrained", "unchanged"]


def index_path(config: SampleHubConfig, model_version: str) -> Path:
    r"""``<home>/index/ivfpq/<model_version>`` (characters other than ``[\w.-]`` become ``_``)."""
    return config.home_path / "index" / "ivfpq" / re.sub(r"[^\w.-]", "_", model_version)


def load_ivfpq_index(
    repo: Repository, model_version: str | None = None, mmap: bool = False
) -> IvfpqIndex:
    """The saved index of a model version (default: the repository's current one).

    ``mmap`` maps it read-only (:func:`~samplehub.index.ivfpq.load_index`), as query
    contexts do when ``config.retrieval.mmap`` is set.

    Raises:
        IndexNotTrainedError: no index was built for that version; materialize the
            ``ivfpq_index`` asset or call :func:`update_ivfpq_index`.
    """
    version = model_version or current_model_version(repo.config)
    return load_index(index_path(repo.config, version), mmap=mmap)


def index_shape(nb: int, d: int, retrieval: RetrievalConfig) -> tuple[int, int, int]:
    """``(nlist, m, nbits)`` for ``nb`` vectors of dimension ``d`` (module docstring).

    Raises:
        ConfigError: ``retrieval.pq_m`` does not divide ``d``.
        IndexNotTrainedError: fewer than two vectors (nothing to train on).
    """
    if nb < 2:
        raise IndexNotTrainedError(
            f"{nb} feature vector(s) cannot train an IVF-PQ index; compute the features of a "
            "dataset first (asset image_features)"
        )
    if retrieval.pq_m < 1 or d % retrieval.pq_m:
        raise ConfigError(f"retrieval.pq_m={retrieval.pq_m} must divide the feature dimension {d}")
    if retrieval.cell_size < 1:
        raise ConfigError(f"retrieval.cell_size={retrieval.cell_size} must be >= 1")
    if retrieval.store not in STORES:
        raise ConfigError(
            f"retrieval.store={retrieval.store!r} must be one of {', '.join(STORES)}"
        )
    nlist = min(retrieval.nlist, suggest_nlist(nb, retrieval.cell_size))
    nbits = min(retrieval.pq_nbits, int(math.log2(nb)))
    return nlist, retrieval.pq_m, nbits


@dataclass(frozen=True)
class ShardTask:
    """What every executor of a distributed build needs; pickled to Spark executors."""

    catalog: Catalog
    model_version: str
    trained: bytes
    """The trained, empty index (:func:`~samplehub.index.ivfpq.to_bytes`)."""
    params: IvfpqParams
    scratch: str
    """A folder on the catalog's storage where executors leave their shards."""


def build_shard(item: tuple[str, np.ndarray], task: ShardTask) -> tuple[str, int]:
    """Add one ``features`` file's vectors to a copy of the trained index and store it.

    Args:
        item: the file's URI and the ids of it to leave out (those another file holds).
        task: the build's shared settings.

    Returns:
        The shard's URI and how many vectors it holds.
    """
    import fsspec

    uri, skip = item
    rows = task.catalog.read_file(uri, ["sample_id", "model_version", "vector"])
    rows = rows.filter(pc.field("model_version") == task.model_version)
    ids, first = np.unique(rows.column("sample_id").to_numpy(), return_index=True)
    keep = first[~np.isin(ids, skip)]
    shard = from_bytes(task.trained, task.params, 0)
    if len(keep):
        add_to_index(shard, vector_rows(rows.column("vector").take(keep)),
                     rows.column("sample_id").to_numpy()[keep])
    out = f"{task.scratch}/shard-{uuid.uuid4().hex}.faiss"
    fs, path = fsspec.core.url_to_fs(out, **task.catalog.file_options)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(to_bytes(shard))
    return out, len(keep)


def build_on_executors(repo: Repository, version: str) -> IvfpqIndex:
    """The index :func:`build_for` builds over the stored features, built on Spark.

    The driver trains the cells and codebooks on the sample :func:`build_for` would train
    on; each executor adds one ``features`` file's vectors to a copy of the trained index
    and writes it to the catalog's storage as a shard; the driver merges the shards'
    inverted lists, stores and ids (:func:`~samplehub.index.ivfpq.merge_into`). Searches
    match the in-process build's; the driver holds the training sample and the final
    index, never the whole feature table.
    """
    import fsspec

    catalog, retrieval = repo.catalog, repo.config.retrieval
    # Each file's shard, minus the ids an earlier file holds (a vector stored twice is
    # indexed once, as load_features reads it once).
    plan: list[tuple[str, np.ndarray]] = []
    ids = np.zeros(0, np.int64)
    for uri in catalog.files("features"):
        rows = catalog.read_file(uri, ["sample_id", "model_version"])
        mine = np.unique(rows.filter(pc.field("model_version") == version)
                         .column("sample_id").to_numpy())
        if len(mine):
            plan.append((uri, mine[np.isin(mine, ids)]))
            ids = np.union1d(ids, mine)
    d = 0
    if plan:  # the dimension, from one vector of the first file
        first = catalog.read_file(plan[0][0], ["model_version", "vector"])
        first = first.filter(pc.field("model_version") == version).slice(0, 1)
        d = len(first.column("vector")[0].as_py())
    nlist, m, nbits = index_shape(len(ids), d, retrieval)
    sample = training_sample(len(ids), nlist)
    params = IvfpqParams(d=d, nlist=nlist, m=m, nbits=nbits, refine=True,
                         store=retrieval.store)  # type: ignore[arg-type]
    wanted = ids if sample is None else ids[sample]
    index = train_ivfpq_index(training_vectors(catalog, [u for u, _ in plan], version, wanted, d),
                              params)
    index.ntotal_at_train = len(ids)
    folder = scratch_folder(repo, index_path(repo.config, version))
    drop_scratch(repo, folder)  # shards of a build killed before it merged them
    scratch = f"{folder}/{uuid.uuid4().hex}"
    task = ShardTask(catalog, version, to_bytes(index), params, scratch)
    shards = map_batch(partial(build_shard, task=task), plan, repo.config.executor)
    fs, root = fsspec.core.url_to_fs(scratch, **catalog.file_options)
    try:
        for uri, _ in shards:
            with fs.open(fsspec.core.url_to_fs(uri, **catalog.file_options)[1], "rb") as f:
                merge_into(index, from_bytes(f.read(), params, 0))
    finally:
        if fs.exists(root):
            fs.rm(root, recursive=True)
    return index


def training_vectors(catalog: Catalog, files: list[str], version: str, wanted: np.ndarray,
                     d: int) -> np.ndarray:
    """(len(wanted), d) vectors of the ascending ids ``wanted``, read one file at a time.

    The rows :func:`build_for` trains on, in its order; an id stored twice takes its first
    file's vector, as the shards index it. Filled into one array, file by file, the driver
    holds the training vectors once: read as one table, Arrow held them about four times
    over (EuroSAT's 27,000 vectors of 512 took 480 MB for 55 MB of vectors).
    """
    xt = np.empty((len(wanted), d), np.float32)
    filled = np.zeros(len(wanted), bool)
    for uri in files:
        rows = catalog.read_file(uri, ["sample_id", "model_version", "vector"])
        rows = rows.filter(pc.field("model_version") == version)
        ids = rows.column("sample_id").to_numpy()
        at = np.minimum(np.searchsorted(wanted, ids), len(wanted) - 1)
        candidates = np.flatnonzero((wanted[at] == ids) & ~filled[at])
        _, first = np.unique(at[candidates], return_index=True)  # an id twice in one file
        chosen = candidates[first]
        if len(chosen):
            xt[at[chosen]] = vector_rows(rows.column("vector").take(pa.array(chosen)))
            filled[at[chosen]] = True
    if not filled.all():
        raise IndexNotTrainedError(f"{int((~filled).sum())} training vectors of {version} were "
                                   "not found in the features files")
    return xt


def scratch_folder(repo: Repository, path: Path) -> str:
    """Where executors leave the shards of the index at ``path`` while a build runs.

    ``<catalog root>/_scratch/ivfpq-<index folder>``: on the catalog's storage, which
    every executor reaches, and one folder per index, so the index's writer lock covers it.
    """
    return f"{repo.catalog.root}/_scratch/ivfpq-{path.name}"


def scratch_builds(repo: Repository, folder: str) -> list[str]:
    """The builds' folders under ``folder`` (:func:`scratch_folder`): one per build."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(folder, **repo.catalog.file_options)
    return sorted(fs.ls(root, detail=False)) if fs.exists(root) else []


def drop_scratch(repo: Repository, folder: str) -> int:
    """Delete what builds left in ``folder``; the caller holds the index's writer lock.

    Returns:
        The number of builds' folders deleted.
    """
    import fsspec

    fs, _ = fsspec.core.url_to_fs(folder, **repo.catalog.file_options)
    builds = scratch_builds(repo, folder)
    for build in builds:
        fs.rm(build, recursive=True)
    return len(builds)


def build_for(xb: np.ndarray, ids: np.ndarray, retrieval: RetrievalConfig) -> IvfpqIndex:
    """A refined IVF-PQ index over ``xb`` shaped by :func:`index_shape`, with its store."""
    nb, d = xb.shape
    nlist, m, nbits = index_shape(nb, d, retrieval)
    return build_ivfpq_index(xb, ids, nlist, m, nbits, refine=True,
                             store=retrieval.store)  # type: ignore[arg-type]


@dataclass
class IndexUpdate:
    """What one index update did.

    Attributes:
        model_version: the features' model version.
        action: ``built`` (first build), ``added`` (new ids only), ``retrained`` (rebuilt
            after growth) or ``unchanged``.
        added: vectors new to the index in this update.
        ntotal: vectors in the index afterwards.
        nlist: IVF cells.
        coarse: the coarse quantizer over their centroids (``hnsw`` or ``flat``).
        nbits: bits per PQ code.
        seconds: wall time.
        path: the index folder.
    """

    model_version: str
    action: Action
    added: int
    ntotal: int
    nlist: int
    coarse: str
    nbits: int
    seconds: float
    path: Path


def update_ivfpq_index(repo: Repository, model_version: str | None = None) -> IndexUpdate:
    """Bring the index of a model version up to date with the ``features`` table.

    Args:
        repo: the repository.
        model_version: None uses the repository's current model version.

    Returns:
        What was done.

    Raises:
        IndexNotTrainedError: no features of that model version are stored yet.
    """
    start = time.perf_counter()
    version = model_version or current_model_version(repo.config)
    path = index_path(repo.config, version)
    # One writer per index: two updates reading the features at different moments must
    # not publish in the other order and drop the later one's vectors.
    with repo.locks.index(path):
        retrieval = repo.config.retrieval
        spark = repo.config.executor.kind == "spark"
        action: Action
        if not (path / "index.faiss").is_file() and spark:
            index, action = build_on_executors(repo, version), "built"
            added = index.ntotal
        elif not (path / "index.faiss").is_file():
            ids, xb = load_features(repo.catalog, version)
            index, action, added = build_for(xb, ids, retrieval), "built", len(ids)
        else:
            ids, xb = load_features(repo.catalog, version)
            index = load_index(path)
            new = ~np.isin(ids, indexed_ids(index))
            added = add_to_index(index, xb[new], ids[new]) if new.any() else 0
            action = "added" if added else "unchanged"
            if needs_retrain(index, retrieval.retrain_growth):
                index = (build_on_executors(repo, version) if spark
                         else build_for(*stored_vectors(index), retrieval))
                action = "retrained"
        if action != "unchanged":
            drop_stagings(path)  # left by an update killed before it published
            save_index(index, path)
    return IndexUpdate(
        version,
        action,
        added,
        index.ntotal,
        index.params.nlist,
        index.params.coarse,
        index.params.nbits,
        time.perf_counter() - start,
        path,
    )


@dataclass
class RecallReport:
    """recall@k of the index against exact search.

    Attributes:
        recall: mean fraction of the exact top-k the index returns, in [0, 1].
        k: the cut-off (at most ntotal - 1).
        nq: probe queries.
        nprobe: IVF cells scanned per query.
        max_codes: codes scanned per query at most (0: no cap).
        ntotal: indexed vectors.
    """

    recall: float
    k: int
    nq: int
    nprobe: int
    max_codes: int
    ntotal: int


def index_recall(
    repo: Repository,
    probe: int | None = None,
    k: int | None = None,
    model_version: str | None = None,
    seed: int = 0,
) -> RecallReport:
    """recall@k of :func:`search` against exact search, on a held-out probe set.

    The probe queries are a seeded sample of the indexed vectors, each held out of its
    own result lists: both searches ask for k + 1 neighbours and drop the query's own
    id, so a query never finds itself (leave-one-out).

    Args:
        repo: the repository (``config.retrieval`` gives nprobe, refine factor and the
            defaults of ``probe`` and ``k``).
        probe: number of probe queries; None uses ``config.retrieval.recall_probe``.
        k: cut-off; None uses ``config.retrieval.recall_k``; capped at ntotal - 1.
        model_version: None uses the current model version.
        seed: seed of the probe sample.

    Returns:
        The recall and what it was measured on.

    Raises:
        IndexNotTrainedError: no index for that model version.
    """
    retrieval = repo.config.retrieval
    index = load_ivfpq_index(repo, model_version)
    xb, ids = stored_vectors(index)
    k = min(k or retrieval.recall_k, index.ntotal - 1)
    nq = min(probe or retrieval.recall_probe, index.ntotal)
    rows = np.random.default_rng(seed).choice(index.ntotal, nq, replace=False)
    _, I_exact = exact_search(xb, xb[rows], k + 1, index.params.metric, ids)
    _, I = search(index, xb[rows], k + 1, retrieval.nprobe, retrieval.refine_factor,
                  retrieval.max_codes)
    own = ids[rows][:, None]
    recall = recall_at_k(drop_own(I, own, k), drop_own(I_exact, own, k), k)
    return RecallReport(recall, k, nq, retrieval.nprobe, retrieval.max_codes, index.ntotal)


def drop_own(I: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """The first k ids of each row of ``I`` (nq, k + 1) other than the row's ``own`` id."""
    kept = np.full((len(I), k), -1, dtype=np.int64)
    for row, (found, query) in enumerate(zip(I, own[:, 0], strict=True)):
        others = found[found != query][:k]
        kept[row, : len(others)] = others
    return kept
