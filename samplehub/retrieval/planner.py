"""The query planner: exact (flat) search over few candidates, filtered IVF-PQ otherwise.

Main paper, section 3.4.2: prototypes are matched against the IVF-PQ index. When step 1's
filter leaves few candidates, IVF-PQ search restricted to them loses recall (the ``nprobe``
scanned cells may hold none of them) while a flat scan of their vectors is both exact and
cheap; below ``exact_below`` candidates the planner therefore scans them exactly. The
chosen method and why are returned as a :class:`SearchPlan`, which the query records in
its :class:`LabelPlan` (``QueryResult.plan``). Every index runs its plan behind one
interface, :class:`samplehub.retrieval.search.VectorSearch`.

Vectors are addressed by *position*, their insertion order in the index; the positions a
search may return travel as an :class:`AllowedPositions` bitmap (faiss'
``IDSelectorBitmap``). Vocabulary as in faiss: queries ``xq`` (nq, d), results ``D`` /
``I`` (nq, k), -1 where fewer than k results exist.

Which index ``index="auto"`` searches is decided by measurement, not by default: the
Hamming index of the champion hash model answers only where an :class:`IndexComparison`
measured on the catalog's own labelled samples (:mod:`samplehub.retrieval.comparison`)
found it better than IVF-PQ on both mAP@k by label and median latency, and the
comparison is of the indexes being served; otherwise IVF-PQ. :func:`choose_index` makes
that decision and the query records it, numbers included (``plan["index_choice"]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np

from samplehub.config import RetrievalConfig
from samplehub.errors import QueryError
from samplehub.retrieval.expansion import PrototypeTarget
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
class LabelPlan:
    """What one query label's subquery resolved, expanded and searched, and how.

    ``QueryResult.plan["labels"][label]`` is its :meth:`as_dict`.

    Attributes:
        resolved: the label the query named, as found in the graph.
        unified: its unified label.
        equivalents: labels equal to it (step 2's exact matches carry one of them).
        exact_total: exact matches that passed the filter (all of them, not one page).
        associated: step 3's targets, labels associated by Eq. 1 within the distance
            bound; None when the query asked for no supplementary samples.
        missing_prototypes: associated labels without prototypes (not searched).
        similarity_threshold: the bound a supplementary match must reach.
        capped: associated labels with prototypes beyond ``max_prototype_labels``.
        search: the vector search that ran; None when none did.
        skipped: why no vector search ran (no index yet), or None.
        index: what the searched index adds to the plan
            (:meth:`~samplehub.retrieval.search.VectorSearch.describe`).
        index_choice: for ``index="auto"``, which index the measurement picked; the
            query records it once, in ``QueryResult.plan["index_choice"]``.
    """

    resolved: str
    unified: str
    equivalents: list[str]
    exact_total: int
    associated: list[PrototypeTarget] | None = None
    missing_prototypes: list[str] = field(default_factory=list)
    similarity_threshold: float | None = None
    capped: list[str] = field(default_factory=list)
    search: SearchPlan | None = None
    skipped: str | None = None
    index: dict[str, object] = field(default_factory=dict)
    index_choice: IndexDecision | None = None

    def as_dict(self) -> dict[str, object]:
        """The plan as JSON-ready values; step 3's entries only when it ran."""
        out: dict[str, object] = {
            "resolved": self.resolved,
            "unified": self.unified,
            "equivalents": list(self.equivalents),
            "exact_total": self.exact_total,
        }
        if self.associated is None:
            return out
        out["associated"] = [
            {"label": t.label, "distance": round(t.distance, 4), "path": list(t.path)}
            for t in self.associated
        ]
        out["missing_prototypes"] = list(self.missing_prototypes)
        out["similarity_threshold"] = self.similarity_threshold
        out["capped"] = list(self.capped)
        if self.skipped is not None:
            out["search"] = {"method": "none", "reason": self.skipped}
        elif self.search is not None:
            out["search"] = self.search.as_dict()
        out.update(self.index)
        return out


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

    def positions(self, ntotal: int) -> np.ndarray:
        """The allowed positions, ascending (int64); unpacked once per object.

        A label's unfiltered allowed set is memoised and searched by every query of it.
        """
        cached: np.ndarray | None = self.__dict__.get("_positions")
        if cached is None or cached.size != self.count:
            bits = np.unpackbits(self.bitmap, count=ntotal, bitorder="little")
            cached = np.flatnonzero(bits)
            self.__dict__["_positions"] = cached  # frozen: a derived cache, not state
        return cached


def plan_search(
    choice: IndexChoice, n_candidates: int, ntotal: int, refined: bool, config: RetrievalConfig
) -> SearchPlan:
    """Pick exact or IVF-PQ search for ``n_candidates`` allowed vectors.

    Args:
        choice: the query's ``index`` setting (``auto`` lets the planner decide).
        n_candidates: vectors left by the filter (and the exact-match exclusion).
        ntotal: vectors in the index.
        refined: whether the index keeps the full vectors (an exact scan needs them).
        config: ``exact_below`` (``auto`` scans exactly below this many candidates) and
            the IVF-PQ settings ``nprobe``, ``refine_factor`` and ``max_codes``.

    Returns:
        The plan.

    Raises:
        QueryError: ``hash`` (planned over the Hamming index by :func:`plan_hash_search`),
            or ``exact`` on an index without full vectors.
    """
    filtered = n_candidates < ntotal
    if choice == "hash":
        raise QueryError(
            "index='hash' searches the Hamming index, not IVF-PQ: plan it with plan_hash_search"
        )
    if choice == "exact" and not refined:
        raise QueryError(
            "index='exact' needs the full vectors, but the IVF-PQ index was built with "
            "refine=False; rebuild it with refine=True or use index 'ivfpq'"
        )
    if choice == "exact":
        return SearchPlan("exact", n_candidates, filtered, "exact search was asked for")
    ivf = SearchPlan("ivfpq", n_candidates, filtered, "", config.nprobe, config.refine_factor,
                     config.max_codes)
    if choice == "ivfpq":
        return replace(ivf, reason="IVF-PQ search was asked for")
    if not refined:
        return replace(ivf, reason="the index keeps no full vectors (refine=False)")
    exact_below = config.exact_below
    if n_candidates < exact_below:
        return SearchPlan(
            "exact",
            n_candidates,
            filtered,
            f"{n_candidates} candidates < exact_below={exact_below}: a flat scan is exact "
            "and cheap, while filtered IVF loses recall",
        )
    return replace(ivf, reason=f"{n_candidates} candidates >= exact_below={exact_below}")


def plan_hash_search(
    n_candidates: int,
    ntotal: int,
    kind: str,
    model: str,
    k: int,
    top_m: int,
    nprobe: int,
    why: str = "hash search was asked for",
) -> SearchPlan:
    """Plan a Hamming search: Hamming top-M over the candidates' codes, then DMCH Eq. 7.

    Args:
        n_candidates: coded samples left by the filter.
        ntotal: codes in the Hamming index.
        kind: ``flat`` or ``ivf`` (the index's).
        model: the hash model version that coded the index.
        k: results per query.
        top_m: M, Hamming candidates re-ranked (``hashing.top_m``; at least k).
        nprobe: IVF lists scanned by an ``ivf`` index.
        why: why the Hamming index is searched (``index="hash"``, or auto's measured
            choice), the start of the plan's reason.

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
        f"{why}: {model} codes, {scan} Hamming top-{m}, re-ranked by "
        "DMCH Eq. 7 on the pre-quantization values",
        nprobe if kind == "ivf" else 0,
        -(-m // k),
    )


IndexName = Literal["ivfpq", "hash"]


@dataclass(frozen=True)
class IndexQuality:
    """One index measured on the probe of an :class:`IndexComparison`.

    Attributes:
        map_at_k: mAP@k by label: mean over probe queries of the average precision of
            their top k results (DMCH's mAP, normalised by the relevant results among the
            k), a result relevant when it shares a label with the query.
        recall_at_k: mean share of exact float search's top k found in the top k.
        p50_ms: median latency of one query, in ms (the Hamming index's includes coding
            the feature with the hash model, as a query does).
        p99_ms: 99th percentile latency, in ms.
    """

    map_at_k: float
    recall_at_k: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class IndexComparison:
    """The Hamming index against IVF-PQ on a seeded probe of the catalog's labelled samples.

    Attributes:
        hash: the Hamming index (coarse Hamming top-M, DMCH Eq. 7 re-rank).
        ivfpq: the IVF-PQ index with its exact re-rank, at the configured nprobe.
        k: results per query (the k of mAP@k and recall@k).
        probe: probe queries measured.
        seed: seed of the probe sample.
        feature_model: the feature model version of the IVF-PQ index.
        ivfpq_ntotal: vectors in the IVF-PQ index measured.
        hash_model: the hash model version of the Hamming index.
        hash_ntotal: codes in the Hamming index measured.
        hash_kind: ``flat`` or ``ivf``.
        measured_at: when (ISO 8601, UTC).
    """

    hash: IndexQuality
    ivfpq: IndexQuality
    k: int
    probe: int
    seed: int
    feature_model: str
    ivfpq_ntotal: int
    hash_model: str
    hash_ntotal: int
    hash_kind: str
    measured_at: str

    @property
    def hash_wins(self) -> bool:
        """Hamming has the strictly higher mAP@k and the strictly lower median latency."""
        return self.hash.map_at_k > self.ivfpq.map_at_k and self.hash.p50_ms < self.ivfpq.p50_ms

    def summary(self) -> str:
        """The measured numbers in words."""
        h, i = self.hash, self.ivfpq
        return (
            f"mAP@{self.k} by label Hamming {h.map_at_k:.3f} vs IVF-PQ {i.map_at_k:.3f}, "
            f"p50 {h.p50_ms:.3f} vs {i.p50_ms:.3f} ms on {self.probe} probe queries"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (the comparison file, the plan)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IndexComparison:
        """Inverse of :meth:`as_dict`."""
        fields = dict(values)
        for name in ("hash", "ivfpq"):
            fields[name] = IndexQuality(**cast(dict[str, float], fields[name]))
        return cls(**fields)


@dataclass(frozen=True)
class ServedIndex:
    """The model version and size of an index as the query serves it."""

    model: str
    ntotal: int


@dataclass(frozen=True)
class IndexDecision:
    """The index ``index="auto"`` searches, why, and the measurement behind it.

    Attributes:
        index: ``ivfpq`` (whose planner may still scan few candidates exactly) or ``hash``.
        reason: why, in words, with the measured numbers.
        comparison: the measurement read, or None when there was none.
    """

    index: IndexName
    reason: str
    comparison: IndexComparison | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (``QueryResult.plan["index_choice"]``)."""
        return {
            "index": self.index,
            "reason": self.reason,
            "comparison": None if self.comparison is None else self.comparison.as_dict(),
        }


def choose_index(
    comparison: IndexComparison | None, ivfpq: ServedIndex | None, hamming: ServedIndex | None
) -> IndexDecision:
    """Pick the Hamming index for ``auto`` only where it measured better on both counts.

    The measurement must be of the indexes served now (same model versions and sizes):
    one taken before the catalog grew or a model changed says nothing about these. And
    the Hamming index must hold as many samples as IVF-PQ, or its missing codes would
    be missing results.

    Args:
        comparison: the latest measurement on this catalog, None if none was taken.
        ivfpq: the IVF-PQ index served (feature model version, vectors), None if none.
        hamming: the Hamming index served (hash model version, codes); None when no
            champion or no index of it could be loaded.

    Returns:
        ``hash`` when the comparison is current and :attr:`IndexComparison.hash_wins`;
        ``ivfpq`` otherwise, with the reason.
    """
    if comparison is None:
        return IndexDecision(
            "ivfpq",
            "IVF-PQ: the Hamming index was never measured against IVF-PQ on this catalog "
            "(the hash_index asset measures it when both indexes exist)",
        )
    measured = f"measured {comparison.measured_at}: {comparison.summary()}"
    if not comparison.hash_wins:
        return IndexDecision(
            "ivfpq", f"IVF-PQ: the Hamming index is not better on both counts ({measured})",
            comparison,
        )
    stale = _stale(comparison, ivfpq, hamming)
    if stale:
        return IndexDecision(
            "ivfpq",
            f"IVF-PQ: the Hamming index won a measurement of other indexes than the ones "
            f"served ({stale}; materialize hash_index to measure again; {measured})",
            comparison,
        )
    return IndexDecision(
        "hash", f"Hamming: better on both mAP and latency ({measured})", comparison
    )


def _stale(
    comparison: IndexComparison, ivfpq: ServedIndex | None, hamming: ServedIndex | None
) -> str:
    """How the served indexes differ from the measured ones; empty when they do not."""
    if ivfpq is None:
        return "no IVF-PQ index is served"
    if hamming is None:
        return f"the Hamming index of {comparison.hash_model} is not loadable"
    measured = (
        ServedIndex(comparison.feature_model, comparison.ivfpq_ntotal),
        ServedIndex(comparison.hash_model, comparison.hash_ntotal),
    )
    differences = [
        f"{name} measured {m.model} with {m.ntotal} vectors, served {s.model} with {s.ntotal}"
        for name, m, s in zip(("IVF-PQ", "Hamming"), measured, (ivfpq, hamming), strict=True)
        if m != s
    ]
    if hamming.ntotal < ivfpq.ntotal:
        # searching it would leave out the samples whose codes are not computed yet
        differences.append(f"the Hamming index holds {hamming.ntotal} codes, IVF-PQ "
                           f"{ivfpq.ntotal} vectors")
    return "; ".join(differences)


def searched_index(choice: IndexChoice, decision: IndexDecision | None) -> IndexChoice:
    """The index a query with ``index=choice`` searches: ``hash`` where auto picked it.

    ``auto`` otherwise stays ``auto``: IVF-PQ, whose planner (:func:`plan_search`) may
    still scan few candidates exactly.
    """
    if choice == "auto" and decision is not None and decision.index == "hash":
        return "hash"
    return choice
