"""IVF-PQ feature index with exact re-ranking (main paper, section 3.4.2 and 4.3.1).

The paper indexes image features with IVF-PQ: an inverted file of K-means cells (IVF)
whose members are product-quantised (PQ); a query scans the ``nprobe`` nearest cells. The
paper attributes its flat query time from 10k to 1M samples to this. SampleHub adds an
exact re-rank (faiss ``IndexRefine``): the IVF-PQ search returns ``k * k_factor``
candidates, re-scored with the stored vectors, so recall@k is measured, not assumed.

The re-rank store keeps each vector as float32 (``flat``, 4 d bytes), float16 (``fp16``,
2 d bytes) or 8-bit scalar-quantised (``sq8``, d bytes). Unit features lose about 1e-3 of
their cosine in fp16, far below the gap between neighbours, so fp16 halves the store at the
same recall (``bench/results/query.json``). A saved index can be memory-mapped
(:func:`load_index` with ``mmap=True``): the store stays in the page cache, shared by every
process serving the same file, and resident memory holds only the pages queries touch.

Flat query time needs a per-query cost that does not grow with the repository. Three
choices give it (the paper does not say how it sizes the index): cells of a constant size
(:func:`suggest_nlist`: ``nlist ~ nb / cell_size``), so ``nprobe`` cells hold about the same
number of codes at 100k and at 1M; an HNSW graph over the cell centroids as the coarse
quantizer, so finding the ``nprobe`` nearest of ``nlist`` centroids costs about ``log nlist``
instead of ``nlist`` distance computations; and a cap on the codes one query scans
(``max_codes``, :func:`ivf_search_parameters`), since cells in dense regions, and cells
grown since the last retrain, hold more than ``cell_size``. The centroids are trained by
two-level K-means (faiss ``two_level_clustering``) above :data:`TWO_LEVEL_ABOVE` cells,
which trains 10k cells on 2 cores in seconds.

Structure: ``IndexIDMap2(IndexRefine(IndexIVFPQ, store))``; ids are the catalog's 63-bit
``sample_id`` values (non-negative int64). Features are L2-normalised, so the default
metric is inner product (= cosine). Vocabulary follows faiss: database ``xb`` (nb, d),
queries ``xq`` (nq, d), training ``xt``, results ``D`` and ``I`` (nq, k), -1 = no result.

An :class:`IvfpqIndex` also remembers how many vectors it held when its quantisers were
trained: :func:`needs_retrain` compares that with today's count (the retrain policy), and
:func:`retrain_index` rebuilds from the stored vectors.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from faiss.contrib.clustering import two_level_clustering

from samplehub.errors import IndexNotTrainedError
from samplehub.index.files import publish_version, published_folder

Metric = Literal["ip", "l2"]
Coarse = Literal["hnsw", "flat"]
Store = Literal["flat", "fp16", "sq8"]
STORES: tuple[str, ...] = ("flat", "fp16", "sq8")
INDEX_FILE = "index.faiss"
META_FILE = "index.json"
MIN_POINTS_PER_CENTROID = 39  # faiss warns below this many training points per centroid
DEFAULT_GROWTH_FACTOR = 2.0
DEFAULT_CELL_SIZE = 100  # vectors per IVF cell that suggest_nlist aims at
HNSW_M = 32  # graph degree of the HNSW coarse quantizer
TWO_LEVEL_ABOVE = 1024  # train more cells than this by two-level K-means
_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
_SQ_TYPES = {"fp16": faiss.ScalarQuantizer.QT_fp16, "sq8": faiss.ScalarQuantizer.QT_8bit}


@dataclass(frozen=True)
class IvfpqParams:
    """Shape of an IVF-PQ index.

    Attributes:
        d: vector dimension.
        nlist: number of IVF cells (K-means centroids).
        m: number of PQ sub-quantisers; must divide ``d``.
        nbits: bits per sub-quantiser code (2**nbits centroids each).
        refine: keep the vectors and re-rank candidates with them.
        store: how the re-rank store keeps them: ``"flat"`` (float32), ``"fp16"`` or
            ``"sq8"`` (module docstring).
        metric: ``"ip"`` (inner product, cosine for unit vectors) or ``"l2"``.
        coarse: coarse quantizer over the cell centroids: ``"hnsw"`` (graph search) or
            ``"flat"`` (exhaustive; indexes saved before the HNSW quantizer say so).
    """

    d: int
    nlist: int
    m: int
    nbits: int = 8
    refine: bool = True
    store: Store = "flat"
    metric: Metric = "ip"
    coarse: Coarse = "hnsw"


@dataclass
class IvfpqIndex:
    """A faiss index plus what it was built with.

    Attributes:
        index: ``IndexIDMap2`` over (refined) ``IndexIVFPQ``; search it with :func:`search`.
        params: the index shape.
        ntotal_at_train: how many vectors the quantisers were trained on (retrain policy).
        mapped: the file was memory-mapped by :func:`load_index`; the index is read-only.
    """

    index: faiss.Index
    params: IvfpqParams
    ntotal_at_train: int
    mapped: bool = False

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return int(self.index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        """Sample id at each position (insertion order), (ntotal,) int64, a copy."""
        idmap: Any = self.index
        return faiss.vector_to_array(idmap.id_map).astype(np.int64)

    @property
    def inner(self) -> Any:
        """The index under the id map; it answers with positions instead of sample ids.

        An ``IndexRefine``, or the ``IndexIVFPQ`` itself for an index built without refine.
        """
        idmap: Any = self.index
        return faiss.downcast_index(idmap.index)

    @property
    def ivf(self) -> Any:
        """The ``IndexIVFPQ`` (its quantizer holds the cell centroids)."""
        return faiss.downcast_index(faiss.extract_index_ivf(self.index))

    @property
    def store(self) -> Any | None:
        """The re-rank store by position: an ``IndexFlat``, or an ``IndexScalarQuantizer``.

        Both search exhaustively (the exact plan) and ``reconstruct`` a stored vector. None
        for an index built with ``refine=False``.
        """
        return faiss.downcast_index(self.inner.refine_index) if self.params.refine else None


def suggest_nlist(nb: int, cell_size: int = DEFAULT_CELL_SIZE) -> int:
    """``nlist`` giving cells of about ``cell_size`` vectors, each trained on >= 39 points.

    A constant cell size keeps the codes one query scans (``nprobe`` cells) constant as the
    repository grows (module docstring).

    Args:
        nb: number of database (training) vectors.
        cell_size: vectors per cell aimed at (>= 1).

    Returns:
        nlist >= 1.
    """
    if cell_size < 1:
        raise ValueError(f"cell_size must be >= 1; got {cell_size}")
    return max(1, min(round(nb / cell_size), nb // MIN_POINTS_PER_CENTROID))


def _as_vectors(x: np.ndarray, name: str, d: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float32 (n, d) array, or a ValueError naming ``name``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        want = f"(n, {d})" if d is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {want}; got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _as_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """``ids`` as unique non-negative int64 of length ``n``, or a ValueError."""
    ids = np.asarray(ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be {n} integers, one per vector; got {ids.dtype} {ids.shape}")
    if n and (ids.min() < 0 or ids.max() > np.iinfo(np.int64).max):
        raise ValueError("ids must be non-negative and fit in int64 (63-bit sample ids)")
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != n:
        raise ValueError("ids contain duplicates; each sample must be indexed once")
    return ids


def _new_index(params: IvfpqParams) -> faiss.Index:
    """An untrained ``IndexIDMap2(IndexRefine(IndexIVFPQ, store))`` (refine optional).

    faiss' Python constructors keep references to the wrapped indexes, so the inner
    objects live as long as the outer one.
    """
    metric = _METRICS[params.metric]
    if params.coarse == "hnsw":
        quantizer: faiss.Index = faiss.IndexHNSWFlat(params.d, HNSW_M, metric)
    else:
        quantizer = faiss.IndexFlat(params.d, metric)
    ivf = faiss.IndexIVFPQ(quantizer, params.d, params.nlist, params.m, params.nbits, metric)
    inner: faiss.Index = ivf
    if params.refine and params.store == "flat":
        inner = faiss.IndexRefineFlat(inner)
    elif params.refine:
        store = faiss.IndexScalarQuantizer(params.d, _SQ_TYPES[params.store], metric)
        inner = faiss.IndexRefine(inner, store)
    return faiss.IndexIDMap2(inner)


def coarse_centroids(xt: np.ndarray, nlist: int, metric: Metric, seed: int) -> np.ndarray:
    """K-means centres of ``xt`` for the IVF cells, (nlist, d) float32.

    Up to :data:`TWO_LEVEL_ABOVE` cells: plain K-means. Above: faiss' two-level K-means,
    ``sqrt(nlist)`` coarse clusters each split in proportion to its size, which costs
    ``O(n sqrt(nlist) d)`` per iteration instead of ``O(n nlist d)``. Inner product uses
    spherical K-means (unit centres), as faiss' own IVF training does.
    """
    spherical = metric == "ip"
    if nlist <= TWO_LEVEL_ABOVE:
        kmeans = faiss.Kmeans(xt.shape[1], nlist, seed=seed, spherical=spherical)
        kmeans.train(xt)
        return np.asarray(kmeans.centroids, dtype=np.float32)
    centroids, _ = two_level_clustering(
        xt, round(math.sqrt(nlist)), nlist, seed=seed, spherical=spherical,
        min_points_per_centroid=1,  # sub-clusters are sized to their share; no warning each
    )
    return np.ascontiguousarray(centroids, dtype=np.float32)


def ivf_search_parameters(index: faiss.Index, nprobe: int, max_codes: int = 0) -> Any:
    """The faiss ``SearchParametersIVF`` scanning ``nprobe`` cells of ``index``'s IVF.

    ``max_codes`` > 0 stops a query's scan once it has visited that many codes (faiss
    finishes the cell it is in): cells in dense regions hold more than ``cell_size``
    vectors, so the cap, not ``nprobe`` alone, bounds the work of one query at any
    repository size. An HNSW coarse quantizer searches with ``efSearch = max(2 nprobe,
    64)``, wide enough that the ``nprobe`` cells it returns are the nearest ones for
    >= 99 % of queries (``tests/samplehub/index``). The caller keeps the returned object
    alive while it searches (faiss holds raw pointers to the nested parameters).
    """
    params: Any = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    params.max_codes = max_codes
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        hnsw = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in the stubs
        hnsw.efSearch = max(2 * nprobe, 64)
        params.quantizer_params = hnsw
        params.referenced_hnsw = hnsw  # keeps the nested object alive with params
    return params


def build_ivfpq_index(
    xb: np.ndarray,
    ids: np.ndarray,
    nlist: int,
    m: int,
    nbits: int = 8,
    refine: bool = True,
    *,
    store: Store = "flat",
    metric: Metric = "ip",
    coarse: Coarse = "hnsw",
    xt: np.ndarray | None = None,
    max_train: int = 200_000,
    seed: int = 0,
) -> IvfpqIndex:
    """Train an IVF-PQ index (optionally with a re-rank store) and add ``xb``.

    :func:`train_ivfpq_index` on ``xt`` (or a sample of ``xb``), then :func:`add_to_index`.

    Args:
        xb: database vectors (nb, d).
        ids: sample ids (nb,), unique, non-negative.
        nlist: number of IVF cells; :func:`suggest_nlist` gives a default.
        m: PQ sub-quantisers; must divide d (e.g. d/8).
        nbits: bits per PQ code.
        refine: re-rank candidates with the stored vectors.
        store: the re-rank store (:class:`IvfpqParams`).
        metric: ``"ip"`` or ``"l2"``.
        coarse: ``"hnsw"`` or ``"flat"`` coarse quantizer (:class:`IvfpqParams`).
        xt: training vectors; None trains on a seeded sample of ``xb``.
        max_train: cap on the training sample drawn from ``xb``, raised to 39 points per
            cell when ``nlist`` needs more.
        seed: seed of that sample and of K-means.

    Returns:
        The built index; ``ntotal_at_train`` = nb.

    Raises:
        ValueError: on bad shapes or ids, ``m`` not dividing d, or too few training vectors
            for ``nlist`` cells and ``2**nbits`` PQ centroids.
    """
    xb = _as_vectors(xb, "xb")
    nb, d = xb.shape
    ids = _as_ids(ids, nb)
    if xt is None:
        rows = training_sample(nb, nlist, max_train, seed)
        xt = xb if rows is None else xb[rows]
    params = IvfpqParams(d=d, nlist=nlist, m=m, nbits=nbits, refine=refine, store=store,
                         metric=metric, coarse=coarse)
    built = train_ivfpq_index(xt, params, seed=seed)
    built.ntotal_at_train = nb
    _add_by_cell(built.index, xb, ids)
    return built


def train_ivfpq_index(xt: np.ndarray, params: IvfpqParams, seed: int = 0) -> IvfpqIndex:
    """An empty index of shape ``params`` with cells, PQ codebooks and store trained on ``xt``.

    Vectors go in with :func:`add_to_index`, in as many chunks as memory asks for: a
    repository larger than memory is trained on a sample and added chunk by chunk.

    Args:
        xt: training vectors (nt, d).
        params: the index shape.
        seed: seed of K-means.

    Returns:
        The index, ``ntotal_at_train`` = nt (set it to the database size when ``xt`` is a
        sample of it).

    Raises:
        ValueError: bad ``xt``, ``m`` not dividing d, an unknown metric, coarse quantizer
            or store, or too few training vectors.
    """
    d = params.d
    xt = _as_vectors(xt, "xt", d)
    if params.metric not in _METRICS:
        raise ValueError(f"metric must be 'ip' or 'l2'; got {params.metric!r}")
    if params.coarse not in ("hnsw", "flat"):
        raise ValueError(f"coarse must be 'hnsw' or 'flat'; got {params.coarse!r}")
    if params.store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}; got {params.store!r}")
    if params.m < 1 or d % params.m:
        raise ValueError(f"m={params.m} must divide the dimension d={d}")
    need = max(params.nlist, 1 << params.nbits)
    if params.nlist < 1 or len(xt) < need:
        raise ValueError(
            f"{len(xt)} training vectors cannot train nlist={params.nlist} cells and "
            f"2**{params.nbits} PQ centroids (need >= {need}); lower nlist "
            f"(suggest_nlist({len(xt)}) = {suggest_nlist(len(xt))}) or nbits, or pass more xt"
        )
    built = IvfpqIndex(index=_new_index(params), params=params, ntotal_at_train=len(xt))
    ivf = built.ivf
    ivf.quantizer.add(coarse_centroids(xt, params.nlist, params.metric, seed))
    ivf.pq.cp.seed = seed
    built.index.train(xt)  # the quantizer holds nlist centroids: this trains PQ (and SQ8)
    return built


def _add_by_cell(index: faiss.Index, xb: np.ndarray, ids: np.ndarray, chunk: int = 65_536) -> None:
    """Add ``xb`` grouped by IVF cell, so each cell's full vectors sit next to each other.

    The exact re-rank reads the stored vector of every candidate by its position in the
    refine store. A query's candidates all come from its ``nprobe`` cells; in insertion
    order they are scattered over the whole store (2 GB at 1M vectors of 512 floats), in
    cell order they are ``nprobe`` contiguous runs, which caches and prefetchers serve far
    better. Positions are internal (the id map holds the sample ids), so the order is free.
    Adds go in chunks to bound the copy.
    """
    _, cell = faiss.extract_index_ivf(index).quantizer.search(xb, 1)
    order = np.argsort(cell[:, 0], kind="stable")
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        index.add_with_ids(np.ascontiguousarray(xb[rows]), ids[rows])


def training_sample(nb: int, nlist: int, max_train: int = 200_000, seed: int = 0
                    ) -> np.ndarray | None:
    """Rows of ``xb`` (ascending) that :func:`build_ivfpq_index` trains on; None: all of them."""
    n_train = max(max_train, MIN_POINTS_PER_CENTROID * nlist)
    if nb <= n_train:
        return None
    return np.sort(np.random.default_rng(seed).choice(nb, n_train, replace=False))


def to_bytes(index: IvfpqIndex) -> bytes:
    """The faiss index as bytes (what :func:`from_bytes` reads), to ship between processes."""
    return bytes(faiss.serialize_index(index.index))


def from_bytes(data: bytes, params: IvfpqParams, ntotal_at_train: int) -> IvfpqIndex:
    """An index from :func:`to_bytes`."""
    return IvfpqIndex(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), params,
                      ntotal_at_train)


def merge_into(index: IvfpqIndex, shard: IvfpqIndex) -> None:
    """Move ``shard``'s vectors into ``index``; both trained alike (one trained copy each).

    faiss merges inverted lists (``IndexIVF.merge_from``), but neither ``IndexRefine`` nor
    the id map over it can merge, so each layer is merged by hand: the shard's IVF lists
    join ``index``'s with their positions shifted past its vectors, its re-rank store is
    appended in the same order, and its ids follow in the id map. Searches then return
    what one index built over both would: the same PQ codes in the same cells, the same
    stored vectors. ``shard`` is left empty.

    Raises:
        ValueError: the indexes differ in shape, or ``index`` is memory-mapped.
    """
    if index.mapped or index.params != shard.params:
        raise ValueError("merge needs a writable index and a shard of the same shape; got "
                         f"{index.params} (mapped={index.mapped}) and {shard.params}")
    ids = np.concatenate([index.ids, shard.ids])
    index.ivf.merge_from(shard.ivf, index.ntotal)
    store = index.store
    if store is not None:
        store.merge_from(shard.store)
        index.inner.ntotal = index.ivf.ntotal
    idmap: Any = index.index
    faiss.copy_array_to_vector(ids, idmap.id_map)
    idmap.ntotal = len(ids)
    idmap.construct_rev_map()


def indexed_ids(index: IvfpqIndex) -> np.ndarray:
    """The ids held by ``index``, in insertion order (int64, (ntotal,)): ``index.ids``."""
    return index.ids


def add_to_index(index: IvfpqIndex, xb: np.ndarray, ids: np.ndarray) -> int:
    """Add a new dataset partition to a trained index, in place; re-adding is a no-op.

    Rows whose id is already indexed are skipped, so re-running the add for a partition
    (same samples, same model version) changes nothing. The quantisers are not retrained;
    check :func:`needs_retrain` afterwards.

    Args:
        index: a built index.
        xb: new vectors (nb, d).
        ids: their sample ids (nb,), unique.

    Returns:
        The number of vectors added.

    Raises:
        ValueError: on a dimension mismatch or bad ids, or a memory-mapped index.
    """
    if index.mapped:
        # faiss aborts the process when it grows a memory-mapped vector
        raise ValueError("a memory-mapped index is read-only; load it with mmap=False to add")
    xb = _as_vectors(xb, "xb", index.params.d)
    ids = _as_ids(ids, len(xb))
    new = ~np.isin(ids, indexed_ids(index))
    if new.any():
        _add_by_cell(index.index, xb[new], ids[new])
    return int(new.sum())


def reserve_store(index: IvfpqIndex, ntotal: int) -> None:
    """Give the re-rank store room for ``ntotal`` vectors now, so later adds never move it.

    faiss keeps the store's codes in a ``std::vector`` that grows geometrically: adding a
    large repository chunk by chunk, one growth step holds the old buffer and one twice its
    size at once (at 10M fp16 vectors, 10 GB and 20 GB). A ``std::vector`` keeps its
    capacity when it shrinks, so growing it once to the final size and back leaves every
    later add writing in place, at the final size's memory.

    Args:
        index: a trained index, not memory-mapped.
        ntotal: vectors the index will hold.

    Raises:
        ValueError: a memory-mapped index.
    """
    if index.mapped:
        raise ValueError("a memory-mapped index is read-only; load it with mmap=False to add")
    store = index.store
    if store is None or ntotal <= store.ntotal:
        return
    used = int(store.ntotal) * int(store.code_size)
    store.codes.resize(int(ntotal) * int(store.code_size))
    store.codes.resize(used)


def needs_retrain(index: IvfpqIndex, growth_factor: float = DEFAULT_GROWTH_FACTOR) -> bool:
    """Retrain policy: True once ntotal >= growth_factor * (ntotal when last trained).

    IVF cells and PQ codebooks trained on a small repository fit a grown one worse (cells
    fill unevenly, recall at fixed nprobe drops), so the asset retrains when the count has
    grown by this factor.

    Args:
        index: the index.
        growth_factor: growth that triggers a retrain; must be > 1.

    Returns:
        Whether to call :func:`retrain_index`.
    """
    if growth_factor <= 1.0:
        raise ValueError(f"growth_factor must be > 1; got {growth_factor}")
    return index.ntotal >= growth_factor * max(index.ntotal_at_train, 1)


def stored_vectors(index: IvfpqIndex) -> tuple[np.ndarray, np.ndarray]:
    """The vectors and ids kept by a refined index (as its store keeps them: fp16 rounds).

    Args:
        index: an index built with ``refine=True``.

    Returns:
        ``xb`` (ntotal, d) float32 and ``ids`` (ntotal,) int64, in insertion order.

    Raises:
        ValueError: if the index keeps no vectors (``refine=False``).
    """
    store = index.store
    if store is None:
        raise ValueError("this index keeps only PQ codes (refine=False); pass xb and ids")
    return store.reconstruct_n(0, index.ntotal), index.ids


def retrain_index(
    index: IvfpqIndex,
    nlist: int | None = None,
    xb: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    seed: int = 0,
) -> IvfpqIndex:
    """Rebuild an index on all its vectors (new IVF cells and PQ codebooks).

    Args:
        index: the index to rebuild (unchanged; a new one is returned).
        nlist: new number of cells; None keeps the old one.
        xb: all vectors; None reads them from a refined index.
        ids: their ids; required with ``xb``.
        seed: training seed.

    Returns:
        A new index with ``ntotal_at_train`` = ntotal.
    """
    if xb is None:
        xb, ids = stored_vectors(index)
    elif ids is None:
        raise ValueError("pass ids together with xb")
    p = index.params
    return build_ivfpq_index(
        xb, ids, nlist or p.nlist, p.m, p.nbits, p.refine, store=p.store, metric=p.metric,
        coarse=p.coarse, seed=seed,
    )


def search(
    index: IvfpqIndex | faiss.Index,
    xq: np.ndarray,
    k: int,
    nprobe: int,
    k_factor: int,
    max_codes: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of each query: IVF-PQ candidates, exactly re-ranked.

    Search parameters travel with the call (faiss ``SearchParameters``), so concurrent
    searches with different settings do not interfere. ``nprobe`` and ``k_factor`` have
    no defaults here: the product's come from ``conf/retrieval`` (``RetrievalConfig``).

    Args:
        index: an :class:`IvfpqIndex`, or a bare faiss index, which gets only the IVF
            settings (``nprobe``, ``max_codes``) if it has an IVF.
        xq: queries (nq, d).
        k: neighbours per query.
        nprobe: IVF cells scanned per query (``RetrievalConfig.nprobe``).
        k_factor: candidates re-ranked = ``k * k_factor`` (refined indexes only;
            ``RetrievalConfig.refine_factor``).
        max_codes: codes scanned per query at most (:func:`ivf_search_parameters`); 0: all
            of the ``nprobe`` cells.

    Returns:
        ``D`` (nq, k) similarities (ip) or squared distances (l2), best first, and ``I``
        (nq, k) sample ids, -1 where fewer than k results exist.

    Raises:
        IndexNotTrainedError: if the index is untrained.
        ValueError: on bad ``xq`` or ``k``.
    """
    raw = index.index if isinstance(index, IvfpqIndex) else index
    if not raw.is_trained:
        raise IndexNotTrainedError(
            "the index is not trained; build it with build_ivfpq_index(...) first"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    xq = _as_vectors(xq, "xq", raw.d)
    params = None
    if isinstance(index, IvfpqIndex):
        params = search_parameters(index, nprobe, k_factor, max_codes)
    elif faiss.try_extract_index_ivf(raw) is not None:
        params = ivf_search_parameters(raw, nprobe, max_codes)
    return raw.search(xq, k, params=params)


def search_parameters(
    index: IvfpqIndex, nprobe: int, k_factor: int, max_codes: int = 0, selector: Any = None
) -> Any:
    """The faiss search parameters for ``index``, with or without exact re-ranking.

    The IVF settings of :func:`ivf_search_parameters` (plus ``selector``, if any), wrapped
    in ``IndexRefineSearchParameters`` with ``k_factor`` when ``index`` re-ranks. They
    apply to the id map and to :attr:`IvfpqIndex.inner` alike. The returned object keeps
    the nested ones alive.
    """
    ivf = ivf_search_parameters(index.ivf, nprobe, max_codes)
    if selector is not None:
        ivf.sel = selector
    if not index.params.refine:
        return ivf
    params: Any = faiss.IndexRefineSearchParameters()
    params.k_factor = k_factor
    params.base_index_params = ivf
    params.referenced_ivf = ivf
    return params


def exact_search(
    xb: np.ndarray,
    xq: np.ndarray,
    k: int,
    metric: Metric = "ip",
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k-NN (faiss ``IndexFlatIP``/``IndexFlatL2``): the recall baseline.

    Args:
        xb: database vectors (nb, d).
        xq: queries (nq, d).
        k: neighbours per query.
        metric: ``"ip"`` or ``"l2"``.
        ids: ids of the database rows; None returns row numbers.

    Returns:
        ``D`` and ``I`` (nq, k) as in :func:`search`.
    """
    xb = _as_vectors(xb, "xb")
    xq = _as_vectors(xq, "xq", xb.shape[1])
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'ip' or 'l2'; got {metric!r}")
    flat = faiss.IndexFlat(xb.shape[1], _METRICS[metric])
    flat.add(xb)
    D, I = flat.search(xq, k)
    if ids is not None:
        ids = _as_ids(ids, len(xb))
        I = np.where(I >= 0, ids[np.clip(I, 0, None)], -1)
    return D, I


def recall_at_k(I_approx: np.ndarray, I_exact: np.ndarray, k: int | None = None) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k (k-NN intersection).

    Args:
        I_approx: approximate results (nq, >= k).
        I_exact: exact results (nq, >= k).
        k: cut-off; None uses all columns of ``I_exact``.

    Returns:
        Recall in [0, 1]; -1 entries (missing results) never count as found.
    """
    I_approx, I_exact = np.asarray(I_approx), np.asarray(I_exact)
    k = I_exact.shape[1] if k is None else k
    if I_approx.shape[0] != I_exact.shape[0] or min(I_approx.shape[1], I_exact.shape[1]) < k:
        raise ValueError(
            f"need (nq, >= {k}) results on both sides; got {I_approx.shape} and {I_exact.shape}"
        )
    found = 0
    total = 0
    for approx, exact in zip(I_approx[:, :k], I_exact[:, :k], strict=True):
        truth = exact[exact >= 0]
        found += np.isin(truth, approx[approx >= 0]).sum()
        total += len(truth)
    return float(found / total) if total else 1.0


def measure_recall(
    index: IvfpqIndex,
    xq: np.ndarray,
    k: int,
    nprobe: int,
    k_factor: int,
    max_codes: int = 0,
) -> float:
    """recall@k of :func:`search` against exact search over the index's own vectors.

    For the asset check on a held-out probe set ``xq``.

    Args:
        index: a refined index (its exact vectors are the ground truth).
        xq: probe queries (nq, d).
        k: cut-off (``RetrievalConfig.recall_k``).
        nprobe: IVF cells scanned (``RetrievalConfig.nprobe``).
        k_factor: re-rank depth factor (``RetrievalConfig.refine_factor``).
        max_codes: scan cap per query (0: none).

    Returns:
        recall@k in [0, 1].
    """
    xb, ids = stored_vectors(index)
    _, I_exact = exact_search(xb, xq, k, index.params.metric, ids)
    _, I = search(index, xq, k, nprobe, k_factor, max_codes)
    return recall_at_k(I, I_exact, k)


def save_index(index: IvfpqIndex, path: str | Path) -> Path:
    """Publish an index at ``path`` (``index.faiss`` + ``index.json``) as a new version.

    Both files go into a new version folder, published by one link swap
    (:mod:`samplehub.index.files`), so a reader never pairs files of two saves.

    Args:
        index: the index.
        path: the index path (its parent is created if missing).

    Returns:
        ``path``.
    """
    folder = Path(path)
    meta = {"params": asdict(index.params), "ntotal_at_train": index.ntotal_at_train}
    publish_version(folder, {
        INDEX_FILE: lambda p: faiss.write_index(index.index, p),
        META_FILE: lambda p: Path(p).write_text(json.dumps(meta, indent=2)),
    })
    return folder


def load_index(path: str | Path, mmap: bool = False) -> IvfpqIndex:
    """Read an index written by :func:`save_index`.

    Args:
        path: the index path (a folder written before versions also loads).
        mmap: map the file instead of reading it (faiss ``IO_FLAG_MMAP_IFC``): loading is
            instant, processes serving the same version share one page-cache copy, and
            the index is read-only (:attr:`IvfpqIndex.mapped`). The version folder stays
            until no longer published plus a grace period (:mod:`samplehub.index.files`).

    Returns:
        The index.

    Raises:
        IndexNotTrainedError: if no index was saved at ``path``.
    """
    folder = published_folder(path)
    if not (folder / INDEX_FILE).is_file() or not (folder / META_FILE).is_file():
        raise IndexNotTrainedError(
            f"no index at {folder} (looked for {INDEX_FILE} and {META_FILE}); build it with "
            "build_ivfpq_index and save_index, or materialize the ivfpq_index asset"
        )
    meta = json.loads((folder / META_FILE).read_text())
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    return IvfpqIndex(
        index=faiss.read_index(str(folder / INDEX_FILE), flags),
        params=IvfpqParams(**{"coarse": "flat", **meta["params"]}),  # older files: flat
        ntotal_at_train=int(meta["ntotal_at_train"]),
        mapped=mmap,
    )
