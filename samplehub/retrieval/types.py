"""The vocabulary of the three-step cross-dataset query (main paper, section 3.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from samplehub.catalog.duplicates import Copy

IndexChoice = Literal["auto", "ivfpq", "hash", "exact"]
HitKind = Literal["exact", "supplementary", "similar"]


@dataclass(frozen=True)
class LandcoverRequest:
    """What a query asks of land cover (HIR paper, section II.A, Eq. 1).

    Attributes:
        k: K, stage-1 candidates re-ranked by Eq. 1 (the paper: 75); None: no re-ranking.
        weights: Eq. 1 class weights by name (unnamed classes weigh 1).
        constraint: a constraint such as ``"water>=0.2,buildings<=0.1"`` on the results
            (:func:`samplehub.retrieval.landcover.parse_landcover`), or None.
    """

    k: int | None = 75
    weights: dict[str, float] = field(default_factory=dict)
    constraint: str | None = None


@dataclass(frozen=True)
class QuerySpec:
    """What the user asks for.

    Attributes:
        labels: query labels (unified or dataset labels, e.g. ``river``, ``bridge``).
        bbox: (min lon, min lat, max lon, max lat) in EPSG:4326; step 1 spatial filter.
        polygon_wkt: a polygon in EPSG:4326 (WKT) for an exact spatial predicate.
        time_range: (start, end) acquisition-time filter.
        datasets, sensors: attribute filters.
        k: supplementary samples per label at most.
        exact_limit: exact matches per label at most (a page; ``None``: all of them). The
            plan's ``exact_total`` counts them all either way.
        include_supplementary: run steps 2-3 (label expansion + visual matching).
        max_label_distance: Eq. 1 distance bound for associated labels (config default).
        similarity_threshold: prototype-match bound for supplementary samples (config default).
        index: which vector search the planner may use.
        landcover: HIR stage 2 over each label's supplementary search and a land-cover
            constraint on every hit (:mod:`samplehub.retrieval.landcover`); None for neither.
    """

    labels: tuple[str, ...]
    bbox: tuple[float, float, float, float] | None = None
    polygon_wkt: str | None = None
    time_range: tuple[datetime, datetime] | None = None
    datasets: tuple[str, ...] | None = None
    sensors: tuple[str, ...] | None = None
    k: int = 100
    exact_limit: int | None = None
    include_supplementary: bool = True
    max_label_distance: float | None = None
    similarity_threshold: float | None = None
    index: IndexChoice = "auto"
    landcover: LandcoverRequest | None = None


@dataclass
class Hit:
    """One returned sample, with why it was returned.

    ``kind`` is ``exact`` for samples carrying a query label (or a label mapped to it) and
    ``supplementary`` for visually matched samples of associated labels, ``similar`` for
    query-by-image results; ``reason`` is a
    human sentence, ``path`` the label-graph path, ``prototype`` the matching prototype id.
    An image catalogued by several datasets (one content hash, DESIGN section 5) is one
    hit: ``labels`` holds every copy's labels and ``copies`` the other copies.
    """

    sample_id: int
    dataset: str
    relpath: str
    labels: list[str]
    kind: HitKind
    score: float
    query_label: str
    reason: str
    path: list[str] = field(default_factory=list)
    prototype: int | None = None
    copies: list[Copy] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        """The datasets holding this hit's image, its own first."""
        return list(dict.fromkeys([self.dataset, *(c.dataset for c in self.copies)]))


@dataclass
class QueryResult:
    """The hits of a query plus the planner's decisions and timings (ms)."""

    spec: QuerySpec
    hits: list[Hit]
    plan: dict[str, object] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def exact(self) -> list[Hit]:
        """Samples that carry a query label."""
        return [h for h in self.hits if h.kind == "exact"]

    @property
    def supplementary(self) -> list[Hit]:
        """Visually matched samples of associated labels."""
        return [h for h in self.hits if h.kind == "supplementary"]

    @property
    def similar(self) -> list[Hit]:
        """Query-by-image results."""
        return [h for h in self.hits if h.kind == "similar"]
