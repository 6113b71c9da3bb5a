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
   planner picks (:mod:`samplehub.retrieval.planner`); matches at or above
   ``similarity_threshold`` are *supplementary samples*, each with its score and reason
   (label path, prototype id).

Section 3.4.3 splits a request "into multiple parallel sample retrieval subtasks based on
the label category sets": one subquery per query label runs in a thread pool (faiss and
numpy release the GIL). Results, plan and timings are those of :mod:`~samplehub.retrieval.types`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from samplehub.catalog.duplicates import Copy
from samplehub.config import RetrievalConfig
from samplehub.errors import IndexNotTrainedError, QueryError, SampleNotFoundError
from samplehub.repository import Repository
from samplehub.retrieval.context import QueryContext, open_context
from samplehub.retrieval.expansion import (
    LabelMatch,
    PrototypeTarget,
    match_label,
    nearest_targets,
)
from samplehub.retrieval.filters import describe_filter, filter_rows, validate_spec
from samplehub.retrieval.hashed import attach_hashed, hashed_of, search_hashed
from samplehub.retrieval.planner import (
    IndexedVectors,
    plan_hash_search,
    plan_search,
    search_positions,
)
from samplehub.retrieval.types import Hit, IndexChoice, QueryResult, QuerySpec

if TYPE_CHECKING:
    from samplehub.models import FeatureModel


@dataclass(frozen=True)
class Subquery:
    """One query label's part of the result.

    Attributes:
        hits: exact then supplementary hits.
        plan: what was resolved, expanded and searched, and how.
        timings_ms: ``expand``, ``exact`` and ``search`` times.
    """

    hits: list[Hit]
    plan: dict[str, object]
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
    if spec.index == "hash" and spec.include_supplementary:
        attach_hashed(repo.config, ctx)
    return query_context(ctx, spec, repo.config.retrieval, parallel)


def query_context(
    ctx: QueryContext, spec: QuerySpec, config: RetrievalConfig, parallel: bool = True
) -> QueryResult:
    """:func:`run_query` on an already loaded context (the benchmark's entry point)."""
    start = time.perf_counter()
    validate_spec(spec)
    if not spec.labels:
        raise QueryError("name at least one query label (e.g. --label river)")
    matches = [match_label(ctx.graph, label) for label in dict.fromkeys(spec.labels)]
    mask = filter_rows(ctx.snapshot, spec)
    filtered = time.perf_counter()

    def run(match: LabelMatch) -> Subquery:
        return subquery(ctx, spec, config, match, mask)

    workers = min(len(matches), os.cpu_count() or 1) if parallel else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, matches))
    else:
        parts = [run(m) for m in matches]
    timings = {"filter": _ms(start, filtered)}
    for match, part in zip(matches, parts, strict=True):
        timings.update({f"{match.query}.{step}": ms for step, ms in part.timings_ms.items()})
    timings["total"] = _ms(start, time.perf_counter())
    plan: dict[str, object] = {
        "filter": describe_filter(spec),
        "candidates": len(ctx.snapshot) if mask is None else int(mask.sum()),
        "model_version": ctx.model_version,
        "label_graph_version": ctx.graph.version,
        "workers": workers,
        "labels": {m.query: p.plan for m, p in zip(matches, parts, strict=True)},
    }
    return QueryResult(spec, [h for p in parts for h in p.hits], plan, timings)


def subquery(
    ctx: QueryContext,
    spec: QuerySpec,
    config: RetrievalConfig,
    match: LabelMatch,
    mask: np.ndarray | None,
) -> Subquery:
    """Steps 2 and 3 for one query label over the filtered rows ``mask`` (None: all)."""
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
    plan: dict[str, object] = {
        "resolved": match.label,
        "unified": match.unified,
        "equivalents": list(match.equivalents),
        "exact_total": exact_total,
    }
    t1 = time.perf_counter()
    timings = {"exact": _ms(t0, t1)}
    if spec.include_supplementary:
        supplementary, search_plan = supplementary_hits(ctx, spec, config, match, mask,
                                                        excluded)
        hits += supplementary
        plan.update(search_plan)
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
    for r, labels in zip(rows.tolist(), snap.labels_of(rows), strict=True):
        fields: dict[str, Any] = {
            "sample_id": int(snap.sample_id[r]),
            "dataset": snap.datasets[snap.dataset[r]],
            "relpath": str(snap.relpath[r]),
            "labels": labels,
        }
        others = snap.copies_of(r)
        others = others[others != r]
        if len(others):
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
) -> tuple[list[Hit], dict[str, object]]:
    """Step 3: prototype matches of the associated labels among the filtered rows.

    Args:
        ctx: the context.
        spec: the query (``k``, thresholds, index choice).
        config: defaults of the thresholds and the index settings.
        match: the query label.
        mask: (n,) rows that passed the filter; None for all.
        excluded: rows left out (the exact matches).

    Returns:
        At most ``spec.k`` supplementary hits, best first, and the plan entries
        ``associated``, ``missing_prototypes``, ``capped`` (associated labels with
        prototypes beyond ``config.max_prototype_labels``, not searched) and ``search``.
    """
    max_distance = _default(spec.max_label_distance, config.max_label_distance)
    threshold = _default(spec.similarity_threshold, config.similarity_threshold)
    targets = ctx.prototype_targets(match, max_distance)
    plan: dict[str, object] = {
        "associated": [
            {"label": t.label, "distance": round(t.distance, 4), "path": list(t.path)}
            for t in targets
        ],
        "missing_prototypes": [t.label for t in targets if t.label not in ctx.prototypes],
        "similarity_threshold": threshold,
    }
    targets, capped = nearest_targets(
        [t for t in targets if t.label in ctx.prototypes], config.max_prototype_labels
    )
    plan["capped"] = [t.label for t in capped]
    if spec.index == "hash":
        allowed_rows = np.ones(len(ctx.snapshot), bool) if mask is None else mask.copy()
        allowed_rows[excluded] = False
        return _hash_matches(ctx, spec, match, targets, allowed_rows, threshold, plan), plan
    if ctx.vectors is None:
        if spec.index != "auto":
            raise IndexNotTrainedError(
                f"index={spec.index!r} was asked for, but no IVF-PQ index exists for model "
                f"version {ctx.model_version}; materialize the ivfpq_index asset"
            )
        plan["search"] = {"method": "none", "reason": "no IVF-PQ index yet (ivfpq_index asset)"}
        return [], plan
    allowed = ctx.allowed_positions(mask, excluded, key=match)
    search_plan = plan_search(
        spec.index, allowed.count, ctx.vectors, config.exact_below, config.nprobe,
        config.refine_factor, config.max_codes,
    )
    plan["search"] = search_plan.as_dict()
    if not targets:
        return [], plan
    xq = np.concatenate([ctx.prototypes[t.label][1] for t in targets])
    D, I = search_positions(search_plan, ctx.vectors, xq, spec.k, allowed)
    rows = np.where(I >= 0, ctx.position_row[np.maximum(I, 0)], -1)
    return _best_matches(ctx, spec, match, targets, similarity(D, ctx.vectors), rows,
                         threshold), plan


def _hash_matches(
    ctx: QueryContext,
    spec: QuerySpec,
    match: LabelMatch,
    targets: list[PrototypeTarget],
    allowed: np.ndarray,
    threshold: float,
    plan: dict[str, object],
) -> list[Hit]:
    """Step 3 over the Hamming index: prototypes encoded by the champion hash model.

    Adds ``search`` (the plan) and ``hash_index`` (model, kind, bytes per sample) to ``plan``.
    """
    hashed = hashed_of(ctx)
    positions = hashed.positions(allowed)
    search_plan = plan_hash_search(len(positions), len(hashed.index), hashed.index.kind,
                                   hashed.model.model_version, spec.k, hashed.top_m,
                                   hashed.index.nprobe)
    plan["search"] = search_plan.as_dict()
    plan["hash_index"] = hashed.describe()
    if not targets:
        return []
    xq = np.concatenate([ctx.prototypes[t.label][1] for t in targets])
    codes, values = hashed.model.encode(xq)
    sims, rows = search_hashed(hashed, search_plan, codes, values, spec.k, hashed.top_m,
                               positions)
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


def similarity(D: np.ndarray, vectors: IndexedVectors) -> np.ndarray:
    """Cosine similarity of unit vectors from search output: D itself (ip), 1 - D/2 (l2)."""
    return D if vectors.metric == "ip" else 1.0 - D / 2.0


def query_by_image(
    repo: Repository,
    image: np.ndarray | None = None,
    sample_id: int | None = None,
    k: int = 20,
    index: IndexChoice = "auto",
) -> QueryResult:
    """Content-based image retrieval: the k catalogued samples most similar to an image.

    The image is encoded by the repository's current feature model (the one the index
    was built from, :func:`samplehub.models.load_feature_model`); a ``sample_id`` query
    reuses that sample's indexed vector and leaves the sample itself out. With
    ``index="hash"`` the feature is hashed by the champion hash model (a ``sample_id``
    query reuses its stored code) and the Hamming index answers (:func:`_similar_by_hash`).

    Args:
        repo: the repository.
        image: an RGB image, (H, W, 3) or (3, H, W), uint8 or float in [0, 1].
        sample_id: a catalogued, indexed sample instead of an image.
        k: results.
        index: ``auto``, ``ivfpq`` or ``exact`` (IVF-PQ index), or ``hash``.

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
    if index == "hash":
        sims, rows, result_plan = _similar_by_hash(repo, ctx, image, sample_id, k)
    else:
        if ctx.vectors is None:
            raise IndexNotTrainedError(
                f"no IVF-PQ index for model version {ctx.model_version}; materialize ivfpq_index"
            )
        excluded = np.zeros(0, np.int64)
        if sample_id is not None:
            xq, row = _indexed_vector(ctx, sample_id)
            excluded = ctx.snapshot.copies_of(row)  # the image itself, in every dataset
        else:
            xq = _encode(repo, ctx, image)  # type: ignore[arg-type] # image is set on this branch
        allowed = ctx.allowed_positions(None, excluded)
        config = repo.config.retrieval
        plan = plan_search(index, allowed.count, ctx.vectors, config.exact_below,
                           config.nprobe, config.refine_factor, config.max_codes)
        D, I = search_positions(plan, ctx.vectors, xq, k, allowed)
        found = I[0] >= 0
        sims = similarity(D, ctx.vectors)[0][found]
        rows = ctx.position_row[I[0][found]]
        result_plan = {"search": plan.as_dict(), "model_version": ctx.model_version}
    first = np.isin(rows, ctx.snapshot.first_copies(rows, set()))
    sims, rows = sims[first], rows[first]
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


def _similar_by_hash(
    repo: Repository, ctx: QueryContext, image: np.ndarray | None, sample_id: int | None, k: int
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Query-by-image over the Hamming index: scores, catalog rows and the plan.

    Raises:
        SampleNotFoundError: ``sample_id`` has no code in the Hamming index.
    """
    hashed = attach_hashed(repo.config, ctx)
    allowed = np.ones(len(ctx.snapshot), dtype=bool)
    if sample_id is not None:
        rows = np.flatnonzero(ctx.snapshot.sample_id == sample_id)
        if not len(rows) or hashed.row_position[rows[0]] < 0:
            raise SampleNotFoundError(
                f"sample {sample_id} has no code in the Hamming index of "
                f"{hashed.model.model_version}; materialize hash_codes and hash_index"
            )
        codes, values = hashed.stored(int(hashed.row_position[rows[0]]))
        allowed[ctx.snapshot.copies_of(int(rows[0]))] = False
    else:
        xq = _encode(repo, ctx, image)  # type: ignore[arg-type] # image is set on this branch
        codes, values = hashed.model.encode(xq)
    positions = hashed.positions(allowed)
    plan = plan_hash_search(len(positions), len(hashed.index), hashed.index.kind,
                            hashed.model.model_version, k, hashed.top_m, hashed.index.nprobe)
    sims, rows = search_hashed(hashed, plan, codes, values, k, hashed.top_m, positions)
    found = rows[0] >= 0
    result_plan: dict[str, object] = {
        "search": plan.as_dict(),
        "hash_index": hashed.describe(),
        "model_version": ctx.model_version,
    }
    return sims[0][found], rows[0][found], result_plan


def _indexed_vector(ctx: QueryContext, sample_id: int) -> tuple[np.ndarray, int]:
    """The stored vector (1, d) and catalog row of an indexed sample."""
    rows = np.flatnonzero(ctx.snapshot.sample_id == sample_id)
    vectors = ctx.vectors
    if not len(rows) or vectors is None or ctx.row_position[rows[0]] < 0:
        raise SampleNotFoundError(
            f"sample {sample_id} is not in the catalog's feature index; compute its features "
            "(asset image_features) and update the index (asset ivfpq_index)"
        )
    if vectors.xb is None:
        raise QueryError("query by sample id needs an index built with refine=True")
    position = int(ctx.row_position[rows[0]])
    return vectors.xb[position : position + 1].copy(), int(rows[0])


def _encode(repo: Repository, ctx: QueryContext, image: np.ndarray) -> np.ndarray:
    """Encode one RGB image with the model version of the index: (1, d) float32."""
    x = np.asarray(image)
    if x.ndim != 3 or 3 not in (x.shape[0], x.shape[-1]):
        raise QueryError(f"image must be (H, W, 3) or (3, H, W) RGB; got shape {x.shape}")
    if x.shape[0] != 3:
        x = x.transpose(2, 0, 1)
    return feature_model(repo, ctx).encode(x[None])


_FEATURE_MODELS: dict[str, FeatureModel] = {}


def feature_model(repo: Repository, ctx: QueryContext) -> FeatureModel:
    """The feature model of the index's version, loaded once per version.

    Raises:
        IndexNotTrainedError: the current model version has moved past the index's.
    """
    from samplehub.models import load_feature_model

    version = ctx.model_version or ""
    if version not in _FEATURE_MODELS:
        model = load_feature_model(repo.config)
        if model.version != version:
            raise IndexNotTrainedError(
                f"the feature model is at {model.version} but the index holds {version}; "
                "recompute features and the index (assets image_features, ivfpq_index)"
            )
        _FEATURE_MODELS[version] = model
    return _FEATURE_MODELS[version]


def _default(value: float | None, default: float) -> float:
    """``value`` unless None."""
    return default if value is None else value


def _ms(start: float, end: float) -> float:
    """Milliseconds between two ``perf_counter`` readings."""
    return round((end - start) * 1000.0, 3)
