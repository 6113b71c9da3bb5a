"""One search interface for every vector index the query uses (main paper, section 3.4.2).

Step 3 of the query (prototype matching) and query-by-image search an index among the
samples that step 1 left, as every faiss index answers ``search(xq, k, params) -> D, I``:
a :class:`VectorSearch` answers ``search(plan, xq, k, allowed) -> (scores, rows)`` with
similarities (higher is better) and catalog rows of the current snapshot. The IVF-PQ
index (:class:`IvfpqSearch`, this module) and the Hamming index of the champion hash
model (:class:`samplehub.retrieval.hashed.HammingSearch`) implement it; a re-ranking
stage or another index is one more implementation, picked by
:meth:`samplehub.retrieval.context.QueryContext.vector_search`.

Each implementation holds a :class:`PositionMap` between catalog rows and its index
positions (the insertion order of its vectors).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import faiss
import numpy as np

from samplehub.config import RetrievalConfig
from samplehub.errors import QueryError, SampleNotFoundError
from samplehub.index.ivfpq import IvfpqIndex, Metric, search_parameters
from samplehub.retrieval.memo import Memo
from samplehub.retrieval.planner import AllowedPositions, SearchPlan, plan_search
from samplehub.retrieval.types import IndexChoice


class VectorSearch(Protocol):
    """A vector index as the query searches it.

    ``xq`` are feature vectors (nq, d) of the current feature model (label prototypes,
    an encoded image); an index that searches something else (hash codes) derives it.
    """

    def allowed(
        self, rows: np.ndarray | None, excluded: np.ndarray, key: Hashable | None = None
    ) -> AllowedPositions:
        """Positions that are catalogued, in ``rows``, not ``excluded``.

        As :meth:`PositionMap.allowed`; memoised under ``key`` when ``rows`` is None.
        """
        ...

    def plan(
        self, choice: IndexChoice, n_candidates: int, k: int, config: RetrievalConfig
    ) -> SearchPlan:
        """How a search of ``k`` results among ``n_candidates`` positions runs."""
        ...

    def search(
        self, plan: SearchPlan, xq: np.ndarray, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run ``plan`` for queries ``xq`` (nq, d) among the ``allowed`` positions.

        Returns:
            Similarities (nq, k') best first and catalog rows (nq, k'), -1 where fewer
            results exist (k' <= k).
        """
        ...

    def position_of(self, row: int, sample_id: int) -> int:
        """The index position of catalog ``row``, for a query by an indexed sample.

        ``row`` holds sample ``sample_id``; -1 means the sample is not in the catalog.

        Raises:
            SampleNotFoundError: the sample is not in this index.
        """
        ...

    def search_stored(
        self, plan: SearchPlan, position: int, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the index's own entry at ``position`` as the one query."""
        ...

    def describe(self) -> dict[str, object]:
        """Entries this index adds to a plan (none, or facts about the index)."""
        ...


@dataclass(frozen=True)
class PositionMap:
    """Catalog rows <-> positions of one index over one snapshot.

    Attributes:
        row_position: (n,) index position of each catalog row, -1 where not indexed.
        position_row: (ntotal,) catalog row of each index position, -1 where the sample
            left the catalog.
    """

    row_position: np.ndarray
    position_row: np.ndarray
    _unfiltered: Memo[AllowedPositions] = field(
        default_factory=Memo, compare=False, repr=False
    )

    @classmethod
    def of(cls, ids: np.ndarray, sample_id: np.ndarray) -> PositionMap:
        """The map for an index holding ``ids`` (ntotal,) by position.

        Catalog rows hold ``sample_id`` (n,); ``ids`` need not be sorted.
        """
        n = len(sample_id)
        row_position = np.full(n, -1, dtype=np.int64)
        position_row = np.full(len(ids), -1, dtype=np.int64)
        if not len(ids):
            return cls(row_position, position_row)
        order = np.argsort(ids)
        slot = np.clip(np.searchsorted(ids, sample_id, sorter=order), 0, len(ids) - 1)
        found = ids[order[slot]] == sample_id
        row_position[found] = order[slot[found]]
        position_row[row_position[found]] = np.flatnonzero(found)
        return cls(row_position, position_row)

    @property
    def ntotal(self) -> int:
        """Number of index positions."""
        return len(self.position_row)

    def allowed(
        self, rows: np.ndarray | None, excluded: np.ndarray, key: Hashable | None = None
    ) -> AllowedPositions:
        """Index positions a search may return: catalogued, in ``rows``, not ``excluded``.

        Works in position space, without materialising position lists. An unfiltered
        query's set depends only on its exact matches, fixed for this snapshot, so with
        ``key`` (the query label) and ``rows`` None it is built once and reused.

        Args:
            rows: (n,) bool mask of catalog rows that passed the filter; None for all.
            excluded: catalog row numbers to leave out (the exact matches).
            key: memo key of an unfiltered set.

        Returns:
            The packed positions and their count.
        """
        if rows is None and key is not None:
            return self._unfiltered.get(key, lambda: self._allowed(None, excluded))
        return self._allowed(rows, excluded)

    def _allowed(self, rows: np.ndarray | None, excluded: np.ndarray) -> AllowedPositions:
        catalogued = self.position_row >= 0
        allowed = catalogued if rows is None else rows[np.maximum(self.position_row, 0)]
        allowed &= catalogued
        positions = self.row_position[excluded]
        allowed[positions[positions >= 0]] = False
        return AllowedPositions.of(allowed)

    def position(self, row: int) -> int:
        """The index position of catalog ``row``; -1 where the row is -1 or not indexed."""
        return int(self.row_position[row]) if row >= 0 else -1

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Catalog rows of ``positions`` (any shape), -1 where a position is -1."""
        return np.where(positions >= 0, self.position_row[np.maximum(positions, 0)], -1)


SCAN_BLOCK = 16_384  # rows per matrix product of an exact scan (32 MB of float32 at d=512)


def float32_rows(xb: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``xb[rows]`` as float32, written into ``out`` (len(rows), d) when ``xb`` is fp16.

    torch widens the halves: its vectorised conversion (F16C) is about ten times numpy's
    element-by-element one (16,000 x 512 halves into a ready buffer: 1.2 ms against 11 ms
    with ``astype``), and every half is exact in float32, so the values are the same.
    torch runs it on its intra-op threads (``torch.set_num_threads``; one in a serving
    worker).

    Returns:
        ``out`` for an fp16 ``xb``; the gathered rows themselves for a float32 one.
    """
    if xb.dtype == np.float32:
        return xb[rows]
    import torch

    torch.from_numpy(out).copy_(torch.from_numpy(xb[rows]))
    return out


class PositionedSearch:
    """What every :class:`VectorSearch` holding a :class:`PositionMap` answers alike."""

    positions: PositionMap

    def allowed(
        self, rows: np.ndarray | None, excluded: np.ndarray, key: Hashable | None = None
    ) -> AllowedPositions:
        """:meth:`PositionMap.allowed` (memoised per query label when unfiltered)."""
        return self.positions.allowed(rows, excluded, key)


@dataclass
class IvfpqSearch(PositionedSearch):
    """The IVF-PQ index, the vectors its re-rank store keeps, and its positions.

    The IVF-PQ search runs on the index under its ``IndexIDMap2`` with a bitmap selector
    of allowed positions (faiss does not pass an ``IndexIDMap`` selector down through
    ``IndexRefine``); the exact scan searches the re-rank store (float32, fp16 or SQ8
    codes) with the same kind of selector, in place.

    Attributes:
        index: the index (``IndexIDMap2`` over ``IndexRefine(IndexIVFPQ, store)``).
        ids: sample id at each position, (ntotal,) int64.
        positions: catalog rows <-> positions.
        store: the re-rank store (:attr:`IvfpqIndex.store`); None for ``refine=False``.
        xb: the stored vectors (ntotal, d) as a view into the store (no copy): float32 for a
            ``flat`` store, float16 for ``fp16`` (its codes are IEEE halves); None for
            ``sq8``, which :meth:`vector` decodes one at a time.
    """

    index: IvfpqIndex
    ids: np.ndarray
    positions: PositionMap
    store: Any
    xb: np.ndarray | None

    @classmethod
    def of(cls, index: IvfpqIndex, sample_id: np.ndarray) -> IvfpqSearch:
        """Wrap ``index`` for catalog rows holding ``sample_id``.

        The vector view of the refine store lives as long as the index.
        """
        ids = index.ids
        store = index.store
        xb = None
        if store is not None and store.ntotal:
            n, d = int(store.ntotal), int(store.d)
            if isinstance(store, faiss.IndexFlat):
                xb = faiss.rev_swig_ptr(store.get_xb(), n * d).reshape(n, d)
            elif index.params.store == "fp16":
                codes = faiss.rev_swig_ptr(store.codes.data(), n * store.code_size)
                xb = codes.view(np.float16).reshape(n, d)
        return cls(index, ids, PositionMap.of(ids, sample_id), store, xb)

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return len(self.ids)

    @property
    def metric(self) -> Metric:
        """``ip`` or ``l2``."""
        return self.index.params.metric

    def plan(
        self, choice: IndexChoice, n_candidates: int, k: int, config: RetrievalConfig
    ) -> SearchPlan:
        """:func:`~samplehub.retrieval.planner.plan_search` over this index."""
        return plan_search(choice, n_candidates, self.ntotal, self.store is not None, config)

    def search(
        self, plan: SearchPlan, xq: np.ndarray, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities (:meth:`similarity`) and catalog rows of :meth:`search_positions`."""
        D, I = self.search_positions(plan, xq, k, allowed)
        return self.similarity(D), self.positions.rows(I)

    def search_positions(
        self, plan: SearchPlan, xq: np.ndarray, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run ``plan``: the k best of the allowed index positions for each query.

        Args:
            plan: from :meth:`plan` (``n_candidates`` = ``allowed.count``).
            xq: queries (nq, d), float32.
            k: results per query.
            allowed: the positions the search may return; None for every position. An
                unfiltered plan ignores it.

        Returns:
            ``D`` (nq, k) similarities (ip) or squared distances (l2), best first, and
            ``I`` (nq, k) index positions, -1 where fewer than k results exist.
        """
        if plan.n_candidates == 0:
            return np.full((len(xq), k), np.nan, np.float32), np.full((len(xq), k), -1, np.int64)
        selector = None
        if plan.filtered and allowed is not None:
            selector = faiss.IDSelectorBitmap(self.ntotal, faiss.swig_ptr(allowed.bitmap))
        xq = np.ascontiguousarray(xq, np.float32)
        if plan.method == "ivfpq":
            params = search_parameters(self.index, plan.nprobe, plan.k_factor, plan.max_codes,
                                       selector)
            return self.index.inner.search(xq, k, params=params)
        if self.store is None:
            raise QueryError("an exact plan needs an index built with refine=True")
        if self.xb is not None:
            return self.scan(xq, k, None if selector is None else allowed)
        if selector is None:
            return self.store.search(xq, k)
        params = faiss.SearchParameters()
        params.sel = selector
        return self.store.search(xq, k, params=params)

    def scan(
        self, xq: np.ndarray, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search of the stored vectors (all, or the ``allowed`` ones) by matrix product.

        The allowed vectors are gathered and scored with one BLAS product per block of
        :data:`SCAN_BLOCK` rows, instead of faiss' store scan, which decodes fp16 codes
        one vector at a time (about ten times slower for the exact plan's 20,000
        candidates) and visits every position to test the selector. fp16 rows are widened
        into one float32 buffer per scan (:func:`float32_rows`).

        Returns:
            As :meth:`search_positions`.
        """
        if self.xb is None:
            raise QueryError("an exact scan needs a flat or fp16 re-rank store")
        positions = None if allowed is None else allowed.positions(self.ntotal)
        n = self.ntotal if positions is None else len(positions)
        k_found = min(k, n)
        D = np.full((len(xq), k), np.nan, np.float32)
        I = np.full((len(xq), k), -1, np.int64)
        if k_found == 0:
            return D, I
        best_s = np.full((len(xq), 0), -np.inf, np.float32)
        best_p = np.zeros((len(xq), 0), np.int64)
        buffer = np.empty((min(n, SCAN_BLOCK), self.xb.shape[1]), np.float32)
        for start in range(0, n, SCAN_BLOCK):
            block = (np.arange(start, min(start + SCAN_BLOCK, n)) if positions is None
                     else positions[start : start + SCAN_BLOCK])
            x = float32_rows(self.xb, block, buffer[: len(block)])
            s = xq @ x.T
            if self.metric == "l2":  # rank by minus the squared distance
                s = 2 * s - (x * x).sum(axis=1)[None, :] - (xq * xq).sum(axis=1)[:, None]
            cand_s = np.hstack([best_s, s])
            cand_p = np.hstack([best_p, np.broadcast_to(block, s.shape)])
            keep = min(k_found, cand_s.shape[1])
            top = np.argpartition(-cand_s, keep - 1, axis=1)[:, :keep]
            best_s = np.take_along_axis(cand_s, top, 1)
            best_p = np.take_along_axis(cand_p, top, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        best_s, best_p = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_p, order, 1)
        D[:, :k_found] = best_s if self.metric == "ip" else -best_s
        I[:, :k_found] = best_p
        return D, I

    def similarity(self, D: np.ndarray) -> np.ndarray:
        """Cosine similarity of unit vectors from search output: D itself (ip), 1 - D/2 (l2)."""
        return D if self.metric == "ip" else 1.0 - D / 2.0

    def position_of(self, row: int, sample_id: int) -> int:
        """The position of catalog ``row``'s stored vector.

        Raises:
            SampleNotFoundError: the sample is not indexed.
            QueryError: the index keeps no full vectors (``refine=False``).
        """
        position = self.positions.position(row)
        if position < 0:
            raise SampleNotFoundError(
                f"sample {sample_id} is not in the catalog's feature index; compute its "
                "features (asset image_features) and update the index (asset ivfpq_index)"
            )
        if self.store is None:
            raise QueryError("query by sample id needs an index built with refine=True")
        return position

    def vector(self, position: int) -> np.ndarray:
        """The stored vector at ``position``, (1, d) float32 (decoded from fp16 or SQ8).

        Raises:
            QueryError: the index keeps no vectors (``refine=False``).
        """
        if self.xb is not None:
            return self.xb[position : position + 1].copy()
        if self.store is None:
            raise QueryError("query by sample id needs an index built with refine=True")
        return np.asarray(self.store.reconstruct(position), np.float32)[None, :]

    def search_stored(
        self, plan: SearchPlan, position: int, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the stored vector at ``position`` as the query."""
        return self.search(plan, self.vector(position), k, allowed)

    def describe(self) -> dict[str, object]:
        """Nothing: the plan's search entry says all (model version is the query's)."""
        return {}
