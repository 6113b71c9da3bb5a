"""The query planner: exact (flat) search over few candidates, filtered IVF-PQ otherwise.

Main paper, section 3.4.2: prototypes are matched against the IVF-PQ index. When step 1's
filter leaves few candidates, IVF-PQ search restricted to them loses recall (the ``nprobe``
scanned cells may hold none of them) while a flat scan of their vectors is both exact and
cheap; below ``exact_below`` candidates the planner therefore scans them exactly. The
chosen method and why are returned as a :class:`SearchPlan` that the query records in
``QueryResult.plan``.

Vectors are addressed by *position*, their insertion order in the index: the IVF-PQ
search is run on the index under its ``IndexIDMap2`` with a bitmap selector of allowed
positions (faiss does not pass an ``IndexIDMap`` selector down through
``IndexRefineFlat``), and the exact scan searches the refined index's ``IndexFlat`` of
full vectors with the same kind of selector, without copying them. Vocabulary as in
faiss: queries ``xq`` (nq, d), results ``D`` / ``I`` (nq, k), -1 where fewer than k
results exist.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import faiss
import numpy as np

from samplehub.errors import QueryError
from samplehub.index.ivfpq import IvfpqIndex, Metric, search_parameters
from samplehub.retrieval.types import IndexChoice

Method = Literal["exact", "ivfpq", "hash"]


@dataclass(frozen=True)
class SearchPlan:
    """How one vector search runs.

    Attributes:
        method: ``exact`` (flat scan of the candidates), ``ivfpq`` (IVF-PQ + refine) or
            ``hash`` (Hamming top-M + DMCH Eq. 7 re-rank, :func:`plan_hash_search`).
        n_candidates: vectors the search may return.
        filtered: whether the candidates are a strict subset of the index.
        reason: why this method was chosen, in words.
        nprobe: IVF cells scanned (``ivfpq`` and an IVF ``hash`` index).
        k_factor: re-ranked candidates per result (``ivfpq`` and ``hash``).
        max_codes: codes one query scans at most (``ivfpq``; 0: no cap).
    """

    method: Method
    n_candidates: int
    filtered: bool
    reason: str
    nprobe: int = 0
    k_factor: int = 0
    max_codes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values (for ``QueryResult.plan``)."""
        return asdict(self)


@dataclass
class IndexedVectors:
    """An IVF-PQ index plus zero-copy access to the full vectors it keeps.

    Attributes:
        index: the index (``IndexIDMap2`` over ``IndexRefineFlat(IndexIVFPQ)``).
        ids: sample id at each position, (ntotal,) int64.
        flat: the refine index's ``IndexFlat`` of the full vectors; ``None`` for an index
            built with ``refine=False`` (no exact scan then).
        xb: those vectors (ntotal, d), a view into ``flat`` (no copy), or ``None``.
    """

    index: IvfpqIndex
    ids: np.ndarray
    flat: Any
    xb: np.ndarray | None

    @classmethod
    def of(cls, index: IvfpqIndex) -> IndexedVectors:
        """Wrap ``index``; the vector view lives as long as the index."""
        idmap: Any = index.index
        ids = faiss.vector_to_array(idmap.id_map).astype(np.int64)
        flat: Any = None
        xb = None
        if index.params.refine:
            refine: Any = faiss.downcast_index(idmap.index)
            flat = faiss.downcast_index(refine.refine_index)
            n, d = int(flat.ntotal), int(flat.d)
            xb = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d) if n else None
        return cls(index=index, ids=ids, flat=flat, xb=xb)

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return len(self.ids)

    @property
    def metric(self) -> Metric:
        """``ip`` or ``l2``."""
        return self.index.params.metric


@dataclass(frozen=True)
class AllowedPositions:
    """Index positions a search may return, in the form faiss' ``IDSelectorBitmap`` reads.

    Attributes:
        bitmap: packed little-endian bits over the index's ntotal positions (uint8).
        count: how many bits are set (the plan's ``n_candidates``).
    """

    bitmap: np.ndarray
    count: int

    @classmethod
    def of(cls, mask: np.ndarray) -> AllowedPositions:
        """Pack a (ntotal,) boolean mask."""
        return cls(np.packbits(mask, bitorder="little"), int(np.count_nonzero(mask)))


def plan_search(
    choice: IndexChoice,
    n_candidates: int,
    vectors: IndexedVectors,
    exact_below: int,
    nprobe: int,
    k_factor: int,
    max_codes: int = 0,
) -> SearchPlan:
    """Pick exact or IVF-PQ search for ``n_candidates`` allowed vectors.

    Args:
        choice: the query's ``index`` setting (``auto`` lets the planner decide).
        n_candidates: vectors left by the filter (and the exact-match exclusion).
        vectors: the index.
        exact_below: ``auto`` scans exactly below this many candidates
            (``RetrievalConfig.exact_below``).
        nprobe: IVF cells to scan on the IVF-PQ path.
        k_factor: re-rank depth factor on the IVF-PQ path.
        max_codes: scan cap per query on the IVF-PQ path (0: none).

    Returns:
        The plan.

    Raises:
        QueryError: ``hash`` (planned over the Hamming index by :func:`plan_hash_search`),
            or ``exact`` on an index without full vectors.
    """
    filtered = n_candidates < vectors.ntotal
    if choice == "hash":
        raise QueryError(
            "index='hash' searches the Hamming index, not IVF-PQ: plan it with plan_hash_search"
        )
    if choice == "exact" and vectors.flat is None:
        raise QueryError(
            "index='exact' needs the full vectors, but the IVF-PQ index was built with "
            "refine=False; rebuild it with refine=True or use index 'ivfpq'"
        )
    if choice == "exact":
        return SearchPlan("exact", n_candidates, filtered, "exact search was asked for")
    ivf = SearchPlan("ivfpq", n_candidates, filtered, "", nprobe, k_factor, max_codes)
    if choice == "ivfpq":
        return _with_reason(ivf, "IVF-PQ search was asked for")
    if vectors.flat is None:
        return _with_reason(ivf, "the index keeps no full vectors (refine=False)")
    if n_candidates < exact_below:
        return SearchPlan(
            "exact",
            n_candidates,
            filtered,
            f"{n_candidates} candidates < exact_below={exact_below}: a flat scan is exact "
            "and cheap, while filtered IVF loses recall",
        )
    return _with_reason(ivf, f"{n_candidates} candidates >= exact_below={exact_below}")


def plan_hash_search(
    n_candidates: int, ntotal: int, kind: str, model: str, k: int, top_m: int, nprobe: int
) -> SearchPlan:
    """Plan ``index="hash"``: Hamming top-M over the candidates' codes, then DMCH Eq. 7.

    Args:
        n_candidates: coded samples left by the filter.
        ntotal: codes in the Hamming index.
        kind: ``flat`` or ``ivf`` (the index's).
        model: the hash model version that coded the index.
        k: results per query.
        top_m: M, Hamming candidates re-ranked (``hashing.top_m``; at least k).
        nprobe: IVF lists scanned by an ``ivf`` index.

    Returns:
        The plan; ``k_factor`` is M / k rounded up.
    """
    m = max(top_m, k)
    scan = f"IVF ({nprobe} lists)" if kind == "ivf" else "flat"
    if n_candidates < ntotal and kind == "ivf":
        scan = "exact scan of the filtered codes (faiss' binary IVF takes no selector)"
    return SearchPlan(
        "hash",
        n_candidates,
        n_candidates < ntotal,
        f"hash search was asked for: {model} codes, {scan} Hamming top-{m}, re-ranked by "
        "DMCH Eq. 7 on the pre-quantization values",
        nprobe if kind == "ivf" else 0,
        -(-m // k),
    )


def _with_reason(plan: SearchPlan, reason: str) -> SearchPlan:
    """``plan`` with ``reason`` set."""
    return SearchPlan(**{**asdict(plan), "reason": reason})


def search_positions(
    plan: SearchPlan,
    vectors: IndexedVectors,
    xq: np.ndarray,
    k: int,
    allowed: AllowedPositions | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``plan``: the k best of the allowed index positions for each query.

    Args:
        plan: from :func:`plan_search` (``n_candidates`` = ``allowed.count``).
        vectors: the index.
        xq: queries (nq, d), float32.
        k: results per query.
        allowed: the positions the search may return
            (:meth:`~samplehub.retrieval.context.QueryContext.allowed_positions`); None
            for every position. An unfiltered plan ignores it.

    Returns:
        ``D`` (nq, k) similarities (ip) or squared distances (l2), best first, and ``I``
        (nq, k) index positions, -1 where fewer than k results exist.
    """
    if plan.n_candidates == 0:
        return np.full((len(xq), k), np.nan, np.float32), np.full((len(xq), k), -1, np.int64)
    selector = None
    if plan.filtered and allowed is not None:
        selector = faiss.IDSelectorBitmap(vectors.ntotal, faiss.swig_ptr(allowed.bitmap))
    xq = np.ascontiguousarray(xq, np.float32)
    if plan.method == "ivfpq":
        return _ivfpq(plan, vectors, xq, k, selector)
    return _exact(vectors, xq, k, selector)


def _exact(
    vectors: IndexedVectors, xq: np.ndarray, k: int, selector: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Flat scan of the stored vectors in place (no copy), restricted by ``selector``."""
    if vectors.flat is None:
        raise QueryError("an exact plan needs an index built with refine=True")
    if selector is None:
        return vectors.flat.search(xq, k)
    params = faiss.SearchParameters()
    params.sel = selector
    return vectors.flat.search(xq, k, params=params)


def _ivfpq(
    plan: SearchPlan, vectors: IndexedVectors, xq: np.ndarray, k: int, selector: Any
) -> tuple[np.ndarray, np.ndarray]:
    """IVF-PQ (+ exact re-rank) search under the id map, restricted by ``selector``."""
    idmap: Any = vectors.index.index
    inner: Any = faiss.downcast_index(idmap.index)
    params = search_parameters(inner, plan.nprobe, plan.k_factor, plan.max_codes, selector)
    return inner.search(xq, k, params=params)
