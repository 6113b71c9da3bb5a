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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

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
        """The allowed positions, ascending (int64)."""
        return np.flatnonzero(np.unpackbits(self.bitmap, count=ntotal, bitorder="little"))


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
