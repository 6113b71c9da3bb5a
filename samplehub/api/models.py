"""Request and response bodies of the HTTP API (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from samplehub.export.builder import Member
from samplehub.export.spec import SPLIT_NAME, Constraints
from samplehub.retrieval.types import Hit, IndexChoice, LandcoverRequest, QuerySpec


class QueryRequest(BaseModel):
    """The three-step query: labels, step-1 constraints and step-2/3 settings."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(..., min_length=1, examples=[["river"], ["river", "bridge"]])
    constraints: Constraints = Field(default_factory=lambda: Constraints())
    k: int = Field(
        default=100, ge=1, le=10_000, description="supplementary samples per label at most"
    )
    exact_limit: int | None = Field(
        default=None, ge=0,
        description="exact matches per label at most (a page); null returns all of them",
    )
    include_supplementary: bool = True
    max_label_distance: float | None = Field(default=None, ge=0)
    similarity_threshold: float | None = None
    index: IndexChoice = "auto"
    rerank_k: int | None = Field(
        default=None, ge=1, le=10_000,
        description="HIR stage 2: re-rank each label's visual top K by land cover (Eq. 1), "
        "towards the mean land cover of the label's exact matches; the paper uses K = 75",
    )
    landcover_weights: dict[str, float] = Field(
        default_factory=dict, examples=[{"buildings": 4}],
        description="Eq. 1 class weights (unnamed classes weigh 1)",
    )
    landcover: str | None = Field(
        default=None, examples=["water>=0.2,buildings<=0.1"],
        description="land-cover constraint on every hit, exact matches included",
    )

    def query_spec(self) -> QuerySpec:
        """The library's query."""
        c = self.constraints
        landcover = None
        if self.rerank_k or self.landcover:
            landcover = LandcoverRequest(self.rerank_k, dict(self.landcover_weights),
                                         self.landcover)
        return QuerySpec(
            labels=tuple(label.strip() for label in self.labels),
            bbox=c.bbox,
            polygon_wkt=c.polygon_wkt,
            time_range=c.time,
            datasets=tuple(c.datasets) if c.datasets else None,
            sensors=tuple(c.sensors) if c.sensors else None,
            k=self.k,
            exact_limit=self.exact_limit,
            include_supplementary=self.include_supplementary,
            max_label_distance=self.max_label_distance,
            similarity_threshold=self.similarity_threshold,
            index=self.index,
            landcover=landcover,
        )


class HitOut(BaseModel):
    """One returned sample with why it was returned."""

    sample_id: int
    id: str = Field(..., description="sample_id as a string (63-bit ids overflow JS numbers)")
    dataset: str
    relpath: str
    labels: list[str]
    kind: str = Field(..., description="exact, supplementary or similar")
    score: float
    query_label: str
    reason: str
    path: list[str] = []
    prototype: int | None = None
    thumbnail: str
    copies: list[dict[str, Any]] = Field(
        default=[], description="other datasets' copies of this image: sample_id, dataset, "
        "relpath, labels (``labels`` above already holds theirs)"
    )
    landcover: dict[str, float] = Field(
        default={}, description="land-cover class proportions (HIR, ESFormer trained weakly on "
        "image labels); empty when the sample has none"
    )

    @classmethod
    def of(cls, hit: Hit, landcover: dict[str, float] | None = None) -> HitOut:
        """From a library hit and its land-cover proportions."""
        return cls(
            landcover=landcover or {},
            sample_id=hit.sample_id, id=str(hit.sample_id), dataset=hit.dataset,
            relpath=hit.relpath, labels=list(hit.labels), kind=hit.kind, score=hit.score,
            query_label=hit.query_label, reason=hit.reason, path=list(hit.path),
            prototype=hit.prototype, thumbnail=f"/samples/{hit.sample_id}/thumbnail.png",
            copies=[{"sample_id": c.sample_id, "id": str(c.sample_id), "dataset": c.dataset,
                     "relpath": c.relpath, "labels": list(c.labels)} for c in hit.copies],
        )


class QueryResponse(BaseModel):
    """Hits (exact first, then supplementary), the plan and a human message."""

    spec_id: str = Field(..., description="query id; feedback on these hits is keyed by it")
    message: str
    exact: int
    supplementary: int
    hits: list[HitOut]
    plan: dict[str, Any] = {}
    timings_ms: dict[str, float] = {}


class MemberOut(BaseModel):
    """One sample of a logical dataset."""

    sample_id: int
    id: str = Field(..., description="sample_id as a string (63-bit ids overflow JS numbers)")
    dataset: str
    relpath: str
    label: str
    labels: list[str]
    kind: str
    score: float
    reason: str
    path: list[str]
    split: str
    thumbnail: str
    landcover: dict[str, float] = Field(
        default_factory=dict,
        description="land-cover class proportions (landcover_stats of the champion ESFormer); "
        "empty when the sample has none",
    )

    @classmethod
    def of(cls, m: Member, landcover: dict[str, float] | None = None) -> MemberOut:
        """From a builder member and its land-cover proportions."""
        return cls(
            **m.__dict__, id=str(m.sample_id), thumbnail=f"/samples/{m.sample_id}/thumbnail.png",
            landcover=landcover or {},
        )


class BuildResponse(BaseModel):
    """A stored logical dataset."""

    build_id: str
    spec_id: str
    name: str
    message: str
    counts: dict[str, dict[str, int]]
    members: list[MemberOut]
    plan: dict[str, Any] = {}


class DecisionIn(BaseModel):
    """One reviewer decision (``sample_id`` may be sent as a string, as JavaScript must)."""

    model_config = ConfigDict(extra="forbid")

    sample_id: int = Field(..., ge=0, le=2**63 - 1, description="a catalog sample id")
    decision: Literal["accept", "reject"]
    label: str | None = None
    kind: str | None = None


class FeedbackRequest(BaseModel):
    """Decisions on samples returned for one query (``spec_id`` from /query or /build)."""

    model_config = ConfigDict(extra="forbid")

    spec_id: str = Field(..., min_length=1)
    who: str = Field(default="anonymous", min_length=1, max_length=200)
    decisions: list[DecisionIn] = Field(..., min_length=1)


class FeedbackResponse(BaseModel):
    """How many decisions were recorded."""

    spec_id: str
    recorded: int


class FeedbackRow(BaseModel):
    """A stored decision."""

    spec_id: str
    dataset: str
    sample_id: int
    label: str | None
    kind: str | None
    decision: str
    who: str | None
    at: str


class ExportRequest(BaseModel):
    """Export a build under ``<home>/exports/<name>``."""

    model_config = ConfigDict(extra="forbid")

    build_id: str = Field(..., min_length=1)
    name: str | None = Field(default=None, pattern=SPLIT_NAME.pattern,
                             description="export folder name (default: the build id)")
    formats: list[Literal["imagefolder", "stac", "zarr"]] = ["imagefolder", "stac", "zarr"]
    supplementary: Literal["accepted", "unrejected", "none"] = "unrejected"
    overwrite: bool = False


class ExportResponse(BaseModel):
    """What was written."""

    path: str
    samples: int
    dropped: int
    counts: dict[str, dict[str, int]]
    files: list[str]


class LabelOut(BaseModel):
    """One label of the label graph."""

    id: str
    name: str
    origin: str
    dataset: str | None = None
    level: int | None = None
    parents: list[str] = []
    maps_to: str | None = None


class AssociationOut(BaseModel):
    """An associated label (Eq. 1 weighted shortest path)."""

    label: str
    name: str
    origin: str
    dataset: str | None
    distance: float
    path: list[str]
    relations: list[str]


class LabellingViewOut(BaseModel):
    """A stored labelling view (unsupervised labelling paper, section 2.8)."""

    dataset: str
    chips: int
    segments: int
    created_at: str


class ChipPointOut(BaseModel):
    """A chip in the chip-level 2-D view."""

    id: str = Field(..., description="the chip's catalog sample_id as a string")
    x: float
    y: float
    label: str | None = None


class SegmentPointOut(BaseModel):
    """A SLIC segment in the segment-level 2-D view."""

    id: str = Field(..., description="the sample_id (string) of the chip holding the segment")
    segment: int = Field(..., description="the segment's label id in its chip's SLIC mask")
    x: float
    y: float
    label: str | None = None


class SegmentRef(BaseModel):
    """One segment of one chip."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., pattern=r"^\d{1,19}$", description="the chip's sample_id as a string")
    segment: int


class LabelRequest(BaseModel):
    """A label applied to a brushed selection: chips in chip mode, segments in segment mode."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["chip", "segment"]
    label: str | None = Field(
        ..., max_length=64, description="the label name; null clears the selection's labels"
    )
    chips: list[str] = Field(default=[], description="chip sample_ids (strings), chip mode")
    segments: list[SegmentRef] = Field(default=[], description="segments, segment mode")


class ProgressOut(BaseModel):
    """Labelled and total chips and segments; chips and segments per label."""

    chips_total: int
    chips_labelled: int
    segments_total: int
    segments_labelled: int
    by_label: dict[str, dict[str, int]]
    can_undo: bool
    can_redo: bool


class SegmentLabelOut(BaseModel):
    """A labelled segment."""

    id: str
    segment: int
    label: str


class LabelsOut(BaseModel):
    """Every label of a view after an action, undo or redo, with the progress."""

    chips: dict[str, str] = Field(..., description="label by chip sample_id")
    segments: list[SegmentLabelOut]
    progress: ProgressOut


class PublishRequest(BaseModel):
    """Publish a view's labels as a new catalog dataset ``<name>-v<n>``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="dataset name before -v<n>; default <view>-labels",
    )


class PublishOut(BaseModel):
    """What publishing wrote and ingested."""

    dataset: str
    path: str
    version: int
    unchanged: bool
    chips_published: int
    chips_unlabelled: int
    masks: int
    labels: list[str]
    segment_labels: list[str]
    added: int
    skipped: int
    quarantined: int
    message: str
