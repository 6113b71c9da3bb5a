"""The three-step cross-dataset query and query-by-image (main paper, section 3.4).

1. **Filter** (:mod:`samplehub.retrieval.filters`): bbox (Hilbert pruning + exact test),
   polygon (sedonadb), time range, datasets, sensors over the catalog.
2. **Label expansion** (:mod:`samplehub.retrieval.expansion`): each query label's exact
   matches (original or mapped labels equal to it), and its associated labels by Eq. 1
   weighted shortest paths within ``max_label_distance``.
3. **Prototype matching**: the K-means prototypes of the associated labels (the
   ``max_prototype_labels`` nearest, :func:`~samplehub.retrieval.expansion.nearest_targets`)
   are searched, as one batched faiss search (nq = number of prototypes), among the
   filtered, indexed samples that are not exact matches, by the method the
   planner picks (:mod:`samplehub.retrieval.planner`) on the index the query chose
   (:class:`~samplehub.retrieval.search.VectorSearch`); matches at or above
   ``similarity_threshold`` are *supplementary samples*, each with its score and reason
   (label path, prototype id).

Section 3.4.3 splits a request "into multiple parallel sample retrieval subtasks based on
the label category sets": one subquery per query label runs in a thread pool (faiss and
numpy release the GIL). Results, plan and timings are those of :mod:`~samplehub.retrieval.types`.

With ``index="auto"`` the query searches the Hamming index only where the latest
measurement on this catalog (:mod:`samplehub.retrieval.comparison`) found it better than
IVF-PQ on both mAP by label and latency (:func:`~samplehub.retrieval.planner.choose_index`);
the plan records the choice and those numbers (``plan["index_choice"]``).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from samplehub.catalog.duplicates import Copy
from samplehub.config import RetrievalConfig
from samplehub.errors import IndexNotTrainedError, QueryError
from samplehub.repository import Repository
from samplehub.retrieval.context import QueryContext, open_context
from samplehub.retrieval.expansion import (
    LabelMatch,
    PrototypeTarget,
    match_label,
    nearest_targets,
)
from samplehub.retrieval.filters import describe_filter, filter_rows, validate_spec
from samplehub.retrieval.landcover import (
    LandcoverTable,
    constrained_rows,
    label_stage,
    landcover_stage,
    landcover_table,
)
from samplehub.retrieval.planner import (
    IndexDecision,
    LabelPlan,
    ServedIndex,
    choose_index,
    searched_index,
)
from samplehub.retrieval.types import Hit, IndexChoice, LandcoverRequest, QueryResult, QuerySpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subquery:
    """One query label's part of the result.

    Attributes:
        hits: exact then supplementary hits.
        plan: what was resolved, expanded and searched, and how.
        timings_ms: ``expand``, ``exact`` and ``search`` times.
    """

    hits: list[Hit]
    plan: LabelPlan
    timings_ms: dict[str, float]


def run_query(repo: Repository, spec: QuerySpec, parallel: bool = True) -> QueryResult:
    """Answer ``spec`` over ``repo`` with exact matches and supplementary samples.

    Args:
        repo: the repository (its context is loaded once and cached).
        spec: the query.
        parallel: run the per-label subqueries in a thread pool.

    Returns:
        Hits grouped by query label (exact first, then supplementary by score), the plan
        (filter, per-label resolution, associated labels, search method and why) and
        timings in ms. No match is an empty result, not an error.

    Raises:
        QueryError: a malformed spec or no label.
        UnknownLabelError: a query label is not in the label graph.
        DatasetNotFoundError: a dataset filter names an unknown dataset.
        IndexNotTrainedError: ``index="hash"`` without a champion hash model and its
            Hamming index (assets ``dmch_model``/``duwh_model``, ``hash_codes``, ``hash_index``).
    """
    ctx = open_context(repo)
    decision = select_index(ctx, spec.index, repo) if spec.include_supplementary else None
    table = landcover_table(repo, ctx) if spec.landcover is not None else None
    return query_context(ctx, spec, repo.config.retrieval, parallel, decision, table)


def select_index(ctx: QueryContext, choice: IndexChoice, repo: Repository) -> IndexDecision | None:
    """Load the index ``choice`` needs; for ``auto``, decide first which one by measurement.

    ``auto`` reads the saved comparison (:func:`~samplehub.retrieval.comparison.load_comparison`)
    and loads the Hamming index only when that comparison favours it, so an ``auto``
    query pays nothing for hashing otherwise.

    Returns:
        For ``auto``, :func:`~samplehub.retrieval.planner.choose_index`'s decision; None
        for an explicit choice.

    Raises:
        IndexNotTrainedError: an explicit ``hash`` without a champion or its Hamming index.
    """
    from samplehub.retrieval.comparison import load_comparison

    if choice != "auto":
        ctx.load_search(choice, repo)
        return None
    comparison = load_comparison(repo.config)
    hamming = None
    if comparison is not None and comparison.hash_wins:
        try:
            search = ctx.attach_hamming(repo)
        except IndexNotTrainedError as exc:
            # auto still has IVF-PQ: the decision says why the measured winner was not used
            log.warning("index=auto cannot use the Hamming index: %s", exc)
        else:
            hamming = ServedIndex(search.model.model_version, len(search.index))
    ivfpq = None
    if ctx.ivfpq is not None and ctx.model_version is not None:
        ivfpq = ServedIndex(ctx.model_version, ctx.ivfpq.ntotal)
    return choose_index(comparison, ivfpq, hamming)


def query_context(
    ctx: QueryContext,
    spec: QuerySpec,
    config: RetrievalConfig,
    parallel: bool = True,
    decision: IndexDecision | None = None,
    landcover: LandcoverTable | None = None,
) -> QueryResult:
    """:func:`run_query` on an already loaded context (the benchmark's entry point).

    ``decision`` is :func:`select_index`'s for ``index="auto"``; without one, ``auto``
    searches IVF-PQ and the plan says no measurement was given. ``landcover`` is the
    statistics table a ``spec.landcover`` request needs
    (:func:`~samplehub.retrieval.landcover.landcover_table`).
    """
    start = time.perf_counter()
    if spec.index != "auto" or not spec.include_supplementary:
        decision = None
    elif decision is None:
        decision = IndexDecision(
            "ivfpq", "IVF-PQ: the query was given no measured comparison (query_context "
            "without a decision)"
        )
    validate_spec(spec)
    if not spec.labels:
        raise QueryError("name at least one query label (e.g. --label river)")
    matches = [match_label(ctx.graph, label) for label in dict.fromkeys(spec.labels)]
    mask = constrained_rows(filter_rows(ctx.snapshot, spec), spec.landcover, landcover)
    filtered = time.perf_counter()

    def run(match: LabelMatch) -> Subquery:
        return subquery(ctx, spec, config, match, mask, decision, landcover)

    workers = min(len(matches), os.cpu_count() or 1) if parallel else 1
    if workers > 1:
        # OpenMP's thread count is per thread: the subqueries search as their caller does
        # (one thread in a serving worker), not with OpenMP's default team per pool thread
        with ThreadPoolExecutor(max_workers=workers, initializer=faiss.omp_set_num_threads,
                                initargs=(faiss.omp_get_max_threads(),)) as pool:
            parts = list(pool.map(run, matches))
    else:
        parts = [run(m) for m in matches]
    timings = {"filter": _ms(start, filtered)}
    for match, part in zip(matches, parts, strict=True):
        timings.update({f"{match.query}.{step}": ms for step, ms in part.timings_ms.items()})
    timings["total"] = _ms(start, time.perf_counter())
    plan: dict[str, object] = {
        "filter": {**describe_filter(spec),
                   "landcover": spec.landcover.constraint if spec.landcover else None},
        "candidates": len(ctx.snapshot) if mask is None else int(mask.sum()),
        "model_version": ctx.model_version,
        "label_graph_version": ctx.graph.version,
        "workers": workers,
        "labels": {m.query: p.plan.as_dict() for m, p in zip(matches, parts, strict=True)},
    }
    if decision is not None:
        plan["index_choice"] = decision.as_dict()
    return QueryResult(spec, [h for p in parts for h in p.hits], plan, timings)


def subquery(
    ctx: QueryContext,
    spec: QuerySpec,
    config: RetrievalConfig,
    match: LabelMatch,
    mask: np.ndarray | None,
    decision: IndexDecision | None = None,
    landcover: LandcoverTable | None = None,
) -> Subquery:
    """Steps 2 and 3 for one query label over the filtered rows ``mask`` (None: all).

    ``decision``: for ``index="auto"``, the index the measurement picked; ``landcover``:
    the statistics ``spec.landcover`` re-ranks by.
    """
    t0 = time.perf_counter()
    groups, excluded = ctx.exact_matches(match)
    hits: list[Hit] = []
    exact_total = 0
    seen: set[int] = set()  # images already reported, whichever dataset's copy matched
    for group in groups:
        rows = group.rows if mask is None else group.rows[mask[group.rows]]
        rows = ctx.snapshot.first_copies(rows, seen)
        exact_total += len(rows)
        room = len(rows) if spec.exact_limit is None else max(spec.exact_limit - len(hits), 0)
        hits += exact_hits(ctx, match, group.reason, group.path, rows[:room])
    plan = LabelPlan(match.label, match.unified, list(match.equivalents), exact_total,
                     index_choice=decision)
    t1 = time.perf_counter()
    timings = {"exact": _ms(t0, t1)}
    if spec.include_supplementary:
        hits += supplementary_hits(ctx, spec, config, match, mask, excluded, plan, landcover)
        timings["supplementary"] = _ms(t1, time.perf_counter())
    return Subquery(hits, plan, timings)


def exact_hits(
    ctx: QueryContext, match: LabelMatch, reason: str, path: tuple[str, ...], rows: np.ndarray
) -> list[Hit]:
    """Hits of kind ``exact`` (score 1) for catalog ``rows``."""
    return [
        Hit(**fields, kind="exact", score=1.0, query_label=match.query, reason=reason,
            path=list(path))
        for fields in catalog_fields(ctx, rows)
    ]


def catalog_fields(ctx: QueryContext, rows: np.ndarray) -> list[dict[str, Any]]:
    """What a :class:`Hit` says about each catalog row: sample id, dataset, path, labels.

    A row whose image other datasets also hold (one content hash) carries every copy's
    labels and lists the other copies.
    """
    snap = ctx.snapshot
    out = []
    # the columns of all rows at once: per-row numpy indexing cost 2 us a row (100 hits: 0.19
    # against 0.04 ms)
    for r, sample_id, dataset, relpath, image, labels in zip(
        rows.tolist(), snap.sample_id[rows].tolist(), snap.dataset[rows].tolist(),
        snap.relpath[rows].tolist(), snap.image[rows].tolist(), snap.labels_of(rows),
        strict=True,
    ):
        fields: dict[str, Any] = {
            "sample_id": sample_id,
            "dataset": snap.datasets[dataset],
            "relpath": str(relpath),
            "labels": labels,
        }
        copies = snap.copies.get(image)  # None where the row's image is catalogued once
        others = None if copies is None else copies[copies != r]
        if others is not None and len(others):
            their_labels = snap.labels_of(others)
            fields["labels"] = list(dict.fromkeys(labels + [x for ls in their_labels for x in ls]))
            fields["copies"] = [
                Copy(int(snap.sample_id[c]), snap.datasets[snap.dataset[c]],
                     str(snap.relpath[c]), tuple(ls))
                for c, ls in zip(others.tolist(), their_labels, strict=True)
            ]
        out.append(fields)
    return out


def supplementary_hits(
    ctx: QueryContext,
    spec: QuerySpec,
    config: RetrievalConfig,
    match: LabelMatch,
    mask: np.ndarray | None,
    excluded: np.ndarray,
    plan: LabelPlan,
    landcover: LandcoverTable | None = None,
) -> list[Hit]:
    """Step 3: prototype matches of the associated labels among the filtered rows.

    Searches the index ``spec.index`` names (:meth:`QueryContext.vector_search`), for
    ``auto`` the one ``plan.index_choice`` picked, all prototypes in one batch; with
    ``spec.landcover.k`` that search is HIR's two stages
    (:func:`~samplehub.retrieval.landcover.label_stage`).

    Args:
        ctx: the context.
        spec: the query (``k``, thresholds, index choice).
        config: defaults of the thresholds and the index settings.
        match: the query label.
        mask: (n,) rows that passed the filter; None for all.
        excluded: rows left out (the exact matches).
        plan: the label's plan; gets ``associated``, ``missing_prototypes``,
            ``similarity_threshold``, ``capped`` (associated labels with prototypes beyond
            ``config.max_prototype_labels``, not searched), ``search`` and the index's
            own entries.
        landcover: the statistics ``spec.landcover`` re-ranks by.

    Returns:
        At most ``spec.k`` supplementary hits, best first.
    """
    max_distance = _default(spec.max_label_distance, config.max_label_distance)
    threshold = _default(spec.similarity_threshold, config.similarity_threshold)
    targets = ctx.prototype_targets(match, max_distance)
    plan.associated = list(targets)
    plan.missing_prototypes = [t.label for t in targets if t.label not in ctx.prototypes]
    plan.similarity_threshold = threshold
    targets, capped = nearest_targets(
        [t for t in targets if t.label in ctx.prototypes], config.max_prototype_labels
    )
    plan.capped = [t.label for t in capped]
    search = ctx.vector_search(searched_index(spec.index, plan.index_choice))
    if search is None:
        plan.skipped = "no IVF-PQ index yet (ivfpq_index asset)"
        return []
    search = label_stage(search, spec.landcover, landcover, match.query, excluded)
    allowed = search.allowed(mask, excluded, key=match)
    plan.search = search.plan(spec.index, allowed.count, spec.k, config)
    plan.index = search.describe()
    if not targets:
        return []
    xq = np.concatenate([ctx.prototypes[t.label][1] for t in targets])
    sims, rows = search.search(plan.search, xq, spec.k, allowed)
    return _best_matches(ctx, spec, match, targets, sims, rows, threshold)


def _best_matches(
    ctx: QueryContext,
    spec: QuerySpec,
    match: LabelMatch,
    targets: list[PrototypeTarget],
    sims: np.ndarray,
    found_rows: np.ndarray,
    threshold: float,
) -> list[Hit]:
    """Each matched sample once, with its best prototype, if similar enough; top k.

    Args:
        ctx: the context.
        spec: the query.
        match: the query label.
        targets: prototype owners, in the order of the query rows.
        sims: similarity of each result (nq, k).
        found_rows: catalog row of each result (nq, k), -1 where none.
        threshold: minimum similarity.
    """
    owner = np.concatenate(
        [np.full(len(ctx.prototypes[t.label][0]), i) for i, t in enumerate(targets)]
    )
    proto_ids = np.concatenate([ctx.prototypes[t.label][0] for t in targets])
    query_row, col = np.nonzero((found_rows >= 0) & (sims >= threshold))
    score, found = sims[query_row, col], found_rows[query_row, col]
    order = np.argsort(-score, kind="stable")
    # each image's best match (copies of one image in several datasets are one image)
    _, first = np.unique(ctx.snapshot.image[found[order]], return_index=True)
    best = order[np.sort(first)][: spec.k]
    hits = []
    for b, fields in zip(best.tolist(), catalog_fields(ctx, found[best]), strict=True):
        target = targets[owner[query_row[b]]]
        prototype = int(proto_ids[query_row[b]])
        hits.append(
            Hit(
                **fields,
                kind="supplementary",
                score=float(score[b]),
                query_label=match.query,
                reason=(
                    f"matches prototype {prototype} of {target.label!r} (similarity "
                    f"{score[b]:.3f}); {target.label!r} is associated with {match.unified!r} "
                    f"via {target.describe()} (distance {target.distance:.3f})"
                ),
                path=list(target.path),
                prototype=prototype,
            )
        )
    return hits


def query_by_image(
    repo: Repository,
    image: np.ndarray | None = None,
    sample_id: int | None = None,
    k: int = 20,
    index: IndexChoice = "auto",
    landcover: LandcoverRequest | None = None,
) -> QueryResult:
    """Content-based image retrieval: the k catalogued samples most similar to an image.

    The image is encoded by the repository's current feature model (the one the index
    was built from, :func:`samplehub.models.feature_model.load_feature_model`); a
    ``sample_id`` query reuses that sample's indexed vector and leaves the sample itself out. With
    ``index="hash"`` the feature is hashed by the champion hash model (a ``sample_id``
    query reuses its stored code) and the Hamming index answers, as with ``auto`` where
    the measurement picked it (:func:`select_index`); either way through the chosen
    index's :class:`~samplehub.retrieval.search.VectorSearch`.

    Args:
        repo: the repository.
        image: an RGB image, (H, W, 3) or (3, H, W), uint8 or float in [0, 1].
        sample_id: a catalogued, indexed sample instead of an image.
        k: results.
        index: ``auto``, ``ivfpq`` or ``exact`` (IVF-PQ index), or ``hash``.
        landcover: HIR stage 2 (K, Eq. 1 weights) and a land-cover constraint, through
            :func:`samplehub.retrieval.landcover.landcover_stage`; None for neither.

    Returns:
        Hits of kind ``similar`` with their cosine similarity (hash: ``1 - D / K``) as
        score; the plan says which search ran.

    Raises:
        QueryError: neither or both of ``image`` and ``sample_id``, a bad image or k.
        SampleNotFoundError: ``sample_id`` is not indexed.
        IndexNotTrainedError: no index yet.
    """
    if (image is None) == (sample_id is None):
        raise QueryError("pass exactly one of image= and sample_id=")
    if k < 1:
        raise QueryError(f"k must be >= 1; got {k}")
    start = time.perf_counter()
    ctx = open_context(repo)
    decision = select_index(ctx, index, repo)
    search = ctx.vector_search(searched_index(index, decision))
    if search is None:
        raise IndexNotTrainedError(
            f"no IVF-PQ index for model version {ctx.model_version}; materialize ivfpq_index"
        )
    search = landcover_stage(repo, ctx, search, landcover, image)
    config = repo.config.retrieval
    # one row per image: copies of one image would otherwise take several of the k places,
    # and reported once they would leave fewer than k hits
    later_copies = ctx.snapshot.later_copies
    if sample_id is not None:
        matches = np.flatnonzero(ctx.snapshot.sample_id == sample_id)
        row = int(matches[0]) if len(matches) else -1
        position = search.position_of(row, sample_id)
        # the image itself in every copy is not a result of its own query
        allowed = search.allowed(None, np.union1d(ctx.snapshot.copies_of(row), later_copies))
        plan = search.plan(index, allowed.count, k, config)
        scores, found_rows = search.search_stored(plan, position, k, allowed)
    else:
        xq = _encode(repo, ctx, image)  # type: ignore[arg-type] # image is set on this branch
        allowed = search.allowed(None, later_copies)
        plan = search.plan(index, allowed.count, k, config)
        scores, found_rows = search.search(plan, xq, k, allowed)
    found = found_rows[0] >= 0
    sims, rows = scores[0][found], found_rows[0][found]
    result_plan = {"search": plan.as_dict(), **search.describe(),
                   "model_version": ctx.model_version}
    if decision is not None:
        result_plan["index_choice"] = decision.as_dict()
    source = f"sample {sample_id}" if sample_id is not None else "the query image"
    hits = [
        Hit(
            **fields,
            kind="similar",
            score=float(score),
            query_label="",
            reason=f"visually similar to {source} (similarity {score:.3f})",
        )
        for fields, score in zip(catalog_fields(ctx, rows), sims, strict=True)
    ]
    spec = QuerySpec(labels=(), k=k, include_supplementary=False, index=index)
    return QueryResult(spec, hits, result_plan, {"total": _ms(start, time.perf_counter())})


def _encode(repo: Repository, ctx: QueryContext, image: np.ndarray) -> np.ndarray:
    """Encode one RGB image with the model version of the index: (1, d) float32."""
    x = np.asarray(image)
    if x.ndim != 3 or 3 not in (x.shape[0], x.shape[-1]):
        raise QueryError(f"image must be (H, W, 3) or (3, H, W) RGB; got shape {x.shape}")
    if x.shape[0] != 3:
        x = x.transpose(2, 0, 1)
    from samplehub.models.feature_model import feature_model

    # the index's version, loaded once per repository (Repository.models)
    return feature_model(repo, ctx.model_version or "").encode(x[None])


def _default(value: float | None, default: float) -> float:
    """``value`` unless None."""
    return default if value is None else value


def _ms(start: float, end: float) -> float:
    """Milliseconds between two ``perf_counter`` readings."""
    return round((end - start) * 1000.0, 3)
