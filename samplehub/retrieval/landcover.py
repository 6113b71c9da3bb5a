"""Land cover in the query: the ``--landcover`` constraint and HIR's stage 2 as a search.

Paper: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``, section II.A.

* :func:`parse_landcover` reads a constraint such as ``"water>=0.2,buildings<=0.1"``
  (each class's share of the image's pixels, from ``landcover_stats``) and
  :func:`landcover_mask` keeps the catalog rows that satisfy every term.
* :class:`LandcoverSearch` is stage 2 of HIR behind the
  :class:`~samplehub.retrieval.search.VectorSearch` interface: it asks the wrapped index
  (stage 1) for its top K (the paper: K = 75) and re-orders them by the weighted Manhattan
  distance of Eq. 1 between the query's land-cover statistics and each candidate's, with
  per-class weights from the request (e.g. ``buildings=4``). Its score is the land-cover
  similarity ``1 - WMD / (2 max w)`` in [0, 1] (two distributions are at most 2 apart in
  the plain Manhattan distance); candidates without statistics come last with score 0.
  :meth:`LandcoverSearch.describe` puts K, the weights and the stage-2 time in the plan.

:func:`rerank_stage` wraps a search for a request, or returns it unchanged when the request
asks for no re-ranking, so the query code has one path either way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ml.hir.stage2 import class_weights, rerank
from samplehub.config import RetrievalConfig
from samplehub.errors import QueryError
from samplehub.retrieval.planner import AllowedPositions, SearchPlan
from samplehub.retrieval.search import VectorSearch
from samplehub.retrieval.types import IndexChoice, LandcoverRequest

if TYPE_CHECKING:
    from samplehub.repository import Repository
    from samplehub.retrieval.context import QueryContext

MISSING = 1e3  # stands in for the statistics of a candidate that has none: it ranks last
_TERM = re.compile(r"^\s*([A-Za-z][\w\- ]*?)\s*(>=|<=|>|<|=)\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class LandcoverTerm:
    """One term of a constraint: ``proportion[name] op value``."""

    name: str
    op: str
    value: float

    def holds(self, x: np.ndarray) -> np.ndarray:
        """Whether each proportion in ``x`` satisfies the term (NaN never does)."""
        with np.errstate(invalid="ignore"):
            return {
                ">=": x >= self.value, "<=": x <= self.value, ">": x > self.value,
                "<": x < self.value, "=": np.isclose(x, self.value),
            }[self.op]


def resolve_class(name: str, classes: list[str], field_name: str) -> str:
    """The class ``name`` names (exact, or singular/plural: ``building`` -> ``buildings``).

    Raises:
        QueryError: no such class; the message names ``field_name`` and lists the classes.
    """
    key = name.strip().lower()
    for candidate in (key, f"{key}s", key.removesuffix("s")):
        if candidate in classes:
            return candidate
    raise QueryError(
        f"{field_name}: unknown land-cover class {name.strip()!r}; classes: {', '.join(classes)}"
    )


def parse_landcover(text: str, classes: list[str]) -> list[LandcoverTerm]:
    """Parse ``"water>=0.2,buildings<=0.1"`` into terms over ``classes``.

    Args:
        text: comma-separated ``<class><op><share>`` terms; op one of ``>= <= > < =``, share
            in [0, 1].
        classes: the land-cover classes of the served ESFormer.

    Raises:
        QueryError: an empty constraint, a malformed term, an unknown class or a share
            outside [0, 1]; the message names the ``landcover`` field and the term.
    """
    terms = []
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise QueryError("landcover: empty constraint; write e.g. 'water>=0.2,buildings<=0.1'")
    for part in parts:
        match = _TERM.match(part)
        if match is None:
            raise QueryError(
                f"landcover: cannot read term {part.strip()!r}; write <class><op><share> with op "
                "one of >=, <=, >, <, = (e.g. water>=0.2)"
            )
        name, op, value = match.group(1), match.group(2), float(match.group(3))
        if not 0.0 <= value <= 1.0:
            raise QueryError(
                f"landcover: term {part.strip()!r}: the share {value} is outside [0, 1]"
            )
        terms.append(LandcoverTerm(resolve_class(name, classes, "landcover"), op, value))
    return terms


def parse_weights(text: str, classes: list[str] | None = None) -> dict[str, float]:
    """Parse Eq. 1 class weights ``"buildings=4,water=2"`` (unnamed classes weigh 1).

    With ``classes`` the names are resolved (:func:`resolve_class`); without, they are kept
    as written and resolved when the search is built (:func:`rerank_stage`).

    Raises:
        QueryError: a malformed term, an unknown class or a negative weight, naming the
            ``landcover_weights`` field.
    """
    weights: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not np.isfinite(number) or number < 0:
            raise QueryError(
                f"landcover_weights: cannot read {part.strip()!r}; write <class>=<weight >= 0> "
                "(e.g. buildings=4)"
            )
        key = name.strip() if classes is None else resolve_class(name, classes,
                                                                  "landcover_weights")
        weights[key] = number
    return weights


@dataclass(frozen=True)
class LandcoverTable:
    """Land-cover statistics of the catalog rows of one snapshot.

    Attributes:
        model_version: the ESFormer version (``esformer-v<n>``).
        classes: class names, the columns.
        P: (n, C) float32 statistics by catalog row, NaN rows where none is stored.
    """

    model_version: str
    classes: list[str]
    P: np.ndarray

    @classmethod
    def of(cls, model_version: str, classes: list[str], ids: np.ndarray, P: np.ndarray,
           sample_id: np.ndarray) -> LandcoverTable:
        """Align stored ``(ids, P)`` (ids ascending) to catalog rows holding ``sample_id``."""
        out = np.full((len(sample_id), len(classes)), np.nan, np.float32)
        if len(ids):
            slot = np.clip(np.searchsorted(ids, sample_id), 0, len(ids) - 1)
            found = ids[slot] == sample_id
            out[found] = P[slot[found]]
        return cls(model_version, classes, out)

    def row(self, row: int) -> np.ndarray:
        """The statistics (C,) of catalog ``row`` (NaN when it has none)."""
        return self.P[row] if row >= 0 else np.full(len(self.classes), np.nan, np.float32)

    def hit_proportions(self, row: int) -> dict[str, float]:
        """``{class: share}`` of catalog ``row``, empty when it has no statistics."""
        x = self.row(row)
        return {} if np.isnan(x).any() else {c: round(float(v), 4)
                                             for c, v in zip(self.classes, x, strict=True)}


def landcover_mask(table: LandcoverTable, terms: list[LandcoverTerm]) -> np.ndarray:
    """(n,) bool: catalog rows whose statistics satisfy every term (rows without none do)."""
    mask = ~np.isnan(table.P).any(axis=1)
    for term in terms:
        mask &= term.holds(table.P[:, table.classes.index(term.name)])
    return mask


@dataclass
class LandcoverSearch:
    """HIR stage 2 over any stage-1 :class:`VectorSearch` (one per query: it keeps its record).

    Attributes:
        inner: the stage-1 search.
        table: the catalog rows' statistics.
        w: Eq. 1 weights (C,).
        top_k: K; 0 passes stage 1's results through (a constraint alone).
        reference: the query's statistics (C,), or None to take the stored statistics of
            the sample a :meth:`search_stored` query names.
        mask: (n,) catalog rows a result may be (the constraint); None for all.
        record: what :meth:`describe` adds to the plan; ``stage2_ms`` after a search.
    """

    inner: VectorSearch
    table: LandcoverTable
    w: np.ndarray
    top_k: int
    reference: np.ndarray | None = None
    mask: np.ndarray | None = None
    record: dict[str, object] = field(default_factory=dict)
    _query_row: int = -1

    def allowed(
        self, rows: np.ndarray | None, excluded: np.ndarray, key: Hashable | None = None
    ) -> AllowedPositions:
        """Stage 1's allowed positions, within the constraint's rows."""
        if self.mask is None:
            return self.inner.allowed(rows, excluded, key)
        return self.inner.allowed(self.mask if rows is None else rows & self.mask, excluded)

    def plan(
        self, choice: IndexChoice, n_candidates: int, k: int, config: RetrievalConfig
    ) -> SearchPlan:
        """Stage 1's plan for K (at least k) results."""
        return self.inner.plan(choice, n_candidates, max(k, self.top_k), config)

    def search(
        self, plan: SearchPlan, xq: np.ndarray, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1's top K of each query, re-ranked by Eq. 1 against :attr:`reference`.

        Raises:
            QueryError: no reference statistics (an image query needs them computed).
        """
        if not self.top_k:
            return self.inner.search(plan, xq, k, allowed)
        if self.reference is None:
            raise QueryError("stage 2 needs the query's land-cover statistics; none were given")
        _, rows = self.inner.search(plan, xq, max(k, self.top_k), allowed)
        return self._rerank(rows, np.repeat(self.reference[None, :], len(rows), axis=0), k)

    def position_of(self, row: int, sample_id: int) -> int:
        """Stage 1's position; remembers ``row`` as the reference of :meth:`search_stored`."""
        self._query_row = row
        return self.inner.position_of(row, sample_id)

    def search_stored(
        self, plan: SearchPlan, position: int, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1 with a stored entry as the query, re-ranked by its stored statistics.

        Raises:
            QueryError: the query sample has no land-cover statistics.
        """
        if not self.top_k:
            return self.inner.search_stored(plan, position, k, allowed)
        reference = self.reference if self.reference is not None else self.table.row(
            self._query_row)
        if np.isnan(reference).any():
            raise QueryError(
                "the query sample has no land-cover statistics of "
                f"{self.table.model_version}; materialize landcover_stats for its dataset"
            )
        _, rows = self.inner.search_stored(plan, position, max(k, self.top_k), allowed)
        return self._rerank(rows, reference[None, :], k)

    def _rerank(self, rows: np.ndarray, sq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Eq. 1 re-rank of catalog ``rows`` (nq, K'); similarity and rows (nq, k)."""
        start = time.perf_counter()
        # gather the K' candidates' statistics; a candidate without any ranks last
        local = np.where(rows >= 0, np.arange(rows.size).reshape(rows.shape), -1)
        sb = np.nan_to_num(self.table.P[np.maximum(rows, 0)].reshape(rows.size, -1), nan=MISSING)
        D, order = rerank(local, sq, sb, self.w, k)
        I = np.where(order >= 0, rows.reshape(-1)[np.maximum(order, 0)], -1)
        scale = 2.0 * max(float(self.w.max()), 1e-12)
        scores = np.where(I >= 0, np.clip(1.0 - D / scale, 0.0, 1.0), np.nan)
        self.record["stage2_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
        self.record["candidates"] = int((rows >= 0).sum())
        return scores.astype(np.float32), I

    def describe(self) -> dict[str, object]:
        """Stage 1's entries plus ``rerank``: K, weights, model version and stage-2 time."""
        return {**self.inner.describe(), "rerank": self.record}


def rerank_stage(
    search: VectorSearch,
    request: LandcoverRequest | None,
    table: LandcoverTable | None,
    reference: np.ndarray | None = None,
    reference_note: str | None = None,
) -> VectorSearch:
    """``search`` wrapped for ``request`` (stage 2, constraint); unchanged for None.

    Args:
        search: the stage-1 search.
        request: K, weights and constraint; None for neither re-ranking nor constraint.
        table: the catalog rows' statistics (needed with a request).
        reference: the query's statistics; None takes a stored query sample's.
        reference_note: where ``reference`` came from, for the plan.

    Raises:
        QueryError: a request without statistics, K < 1, weights naming unknown classes or
            a malformed constraint (naming the field).
    """
    if request is None:
        return search
    if table is None:
        raise QueryError("landcover: no land-cover statistics; materialize esformer_model and "
                         "landcover_stats first")
    if request.k is not None and request.k < 1:
        raise QueryError(f"rerank_k must be >= 1; got {request.k}")
    named = {resolve_class(n, table.classes, "landcover_weights"): v
             for n, v in request.weights.items()}
    try:
        w = class_weights(table.classes, named)
    except ValueError as exc:
        raise QueryError(f"landcover_weights: {exc}") from exc
    record: dict[str, object] = {"K": request.k or 0, "weights": dict(request.weights),
                                 "model_version": table.model_version, "equation": "HIR Eq. 1"}
    if reference_note:
        record["reference"] = reference_note
    mask = None
    if request.constraint:
        mask = landcover_mask(table, parse_landcover(request.constraint, table.classes))
        record["constraint"] = request.constraint
        record["constraint_rows"] = int(mask.sum())
    return LandcoverSearch(search, table, w, request.k or 0, reference, mask, record)


def landcover_table(repo: Repository, ctx: QueryContext) -> LandcoverTable:
    """The champion ESFormer's statistics over ``ctx``'s catalog rows, read once per table version.

    Raises:
        IndexNotTrainedError: no champion ESFormer.
    """
    from samplehub.landcover import TABLE, load_landcover_stats
    from samplehub.models.hir_model import landcover_classes
    from samplehub.retrieval.context import delta_stamp

    version, classes = landcover_classes(repo.config)
    stamp = delta_stamp(repo, repo.catalog.uri(TABLE))

    def build() -> LandcoverTable:
        ids, P = load_landcover_stats(repo.catalog, version)
        return LandcoverTable.of(version, classes, ids, P, ctx.snapshot.sample_id)

    return ctx.landcover.get((version, stamp), build)


def landcover_stage(
    repo: Repository,
    ctx: QueryContext,
    search: VectorSearch,
    request: LandcoverRequest | None,
    image: np.ndarray | None = None,
) -> VectorSearch:
    """:func:`rerank_stage` for a query by image or by a stored sample.

    An image's statistics come from the champion ESFormer, a stored sample's from
    ``landcover_stats``; ``search`` itself is returned for no request.
    """
    if request is None:
        return search
    from samplehub.models.hir_model import load_landcover_model

    table = landcover_table(repo, ctx)
    reference = None
    if image is not None and request.k:
        x = np.asarray(image)
        x = x if x.shape[0] == 3 else x.transpose(2, 0, 1)
        reference = load_landcover_model(repo.config, repo.models).proportions_of(x[None])[0]
    return rerank_stage(search, request, table, reference)


def constrained_rows(
    mask: np.ndarray | None, request: LandcoverRequest | None, table: LandcoverTable | None
) -> np.ndarray | None:
    """A label query's filter ``mask`` narrowed to the rows meeting ``request.constraint``.

    The constraint applies to every hit of a label query, exact matches included, so it
    joins the step-1 filter rather than the search.

    Raises:
        QueryError: a request without statistics or a malformed constraint.
    """
    if request is None or not request.constraint:
        return mask
    if table is None:
        raise QueryError("landcover: no land-cover statistics; materialize esformer_model and "
                         "landcover_stats first")
    rows = landcover_mask(table, parse_landcover(request.constraint, table.classes))
    return rows if mask is None else mask & rows


def label_stage(
    search: VectorSearch,
    request: LandcoverRequest | None,
    table: LandcoverTable | None,
    label: str,
    exact_rows: np.ndarray,
) -> VectorSearch:
    """Stage 2 for one label of a label query (``search`` unchanged without re-ranking).

    A label query has no query image; its reference distribution is the mean land-cover
    statistics of the label's exact matches, so the prototypes' top K are re-ranked by
    Eq. 1 towards what samples of that label look like. The constraint is left to
    :func:`constrained_rows`, which already narrowed the rows.

    Raises:
        QueryError: re-ranking asked for a label none of whose exact matches has statistics.
    """
    if request is None or not request.k:
        return search
    if table is None:
        raise QueryError("landcover: no land-cover statistics; materialize esformer_model and "
                         "landcover_stats first")
    P = table.P[exact_rows]
    P = P[~np.isnan(P).any(axis=1)]
    if not len(P):
        raise QueryError(
            f"rerank_k: none of the {len(exact_rows)} exact matches of {label!r} has land-cover "
            f"statistics of {table.model_version} to re-rank by; materialize landcover_stats "
            "for their datasets, or query without rerank_k"
        )
    note = f"mean of {len(P)} exact matches of {label!r}"
    return rerank_stage(search, LandcoverRequest(request.k, request.weights, None), table,
                        P.mean(axis=0), note)


def hit_landcover(
    repo: Repository, ctx: QueryContext, sample_ids: list[int]
) -> dict[int, dict[str, float]]:
    """``{sample_id: {class: share}}`` of hits that have statistics; empty without a champion."""
    from samplehub.errors import IndexNotTrainedError

    try:
        table = landcover_table(repo, ctx)
    except IndexNotTrainedError:
        return {}
    wanted = np.asarray(sample_ids, np.int64)
    rows = np.flatnonzero(np.isin(ctx.snapshot.sample_id, wanted))
    out = {}
    for row in rows.tolist():
        shares = table.hit_proportions(row)
        if shares:
            out[int(ctx.snapshot.sample_id[row])] = shares
    return out
