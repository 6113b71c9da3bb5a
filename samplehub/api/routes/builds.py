"""POST /build, GET /builds/{id}, POST /feedback, GET /feedback, POST /export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from samplehub.api.models import (
    BuildResponse,
    ExportRequest,
    ExportResponse,
    FeedbackRequest,
    FeedbackResponse,
    FeedbackRow,
    MemberOut,
)
from samplehub.api.routes.query import landcover_of, plain
from samplehub.api.state import ApiState, get_state
from samplehub.export.builder import LogicalDataset, build_dataset
from samplehub.export.export import export_dataset
from samplehub.export.feedback import Decision, feedback_rows, record_feedback
from samplehub.export.spec import DatasetSpec
from samplehub.repository import Repository

router = APIRouter(tags=["datasets"])


def build_response(logical: LogicalDataset, repo: Repository | None = None) -> BuildResponse:
    """The response body of a build; with ``repo`` members carry their land-cover shares."""
    exact = sum(m.kind == "exact" for m in logical.members)
    n = len(logical.members)
    shares = landcover_of(repo, [m.sample_id for m in logical.members])
    message = (
        f"{n} samples ({exact} exact, {n - exact} supplementary)" if n
        else "no sample matches this spec; widen the constraints or check the labels"
    )
    return BuildResponse(
        build_id=logical.build_id, spec_id=logical.spec_id, name=logical.spec.name,
        message=message, counts=logical.counts(),
        members=[MemberOut.of(m, shares.get(m.sample_id)) for m in logical.members],
        plan=plain(logical.plan),
    )


@router.post("/build", response_model=BuildResponse)
def build(spec: DatasetSpec, state: Annotated[ApiState, Depends(get_state)]) -> BuildResponse:
    """Build a logical dataset from a spec and store it; returns its id and members."""
    logical = build_dataset(state.repo, spec, query=state.query)
    state.builds.save(logical)
    return build_response(logical, state.repo)


@router.get("/builds/{build_id}", response_model=BuildResponse)
def get_build(build_id: str, state: Annotated[ApiState, Depends(get_state)]) -> BuildResponse:
    """A stored logical dataset."""
    return build_response(state.builds.load(build_id), state.repo)


@router.post("/feedback", response_model=FeedbackResponse)
def feedback(
    body: FeedbackRequest, state: Annotated[ApiState, Depends(get_state)]
) -> FeedbackResponse:
    """Record accept/reject decisions; a rejected sample is not suggested again for the query."""
    decisions = [Decision(d.sample_id, d.decision, d.label, d.kind) for d in body.decisions]
    # every worker process of the server appends here: the repository's lock, not a
    # thread lock, makes them take turns (WriterLocks.table)
    with state.repo.locks.table("feedback"):
        recorded = record_feedback(state.repo.catalog, body.spec_id, decisions, body.who)
    return FeedbackResponse(spec_id=body.spec_id, recorded=recorded)


@router.get("/feedback", response_model=list[FeedbackRow])
def list_feedback(
    state: Annotated[ApiState, Depends(get_state)],
    spec_id: Annotated[str | None, Query(description="only this query")] = None,
) -> list[FeedbackRow]:
    """Stored decisions, oldest first."""
    frame = feedback_rows(state.repo.catalog, spec_id)
    frame = frame.astype(object).where(frame.notna(), None)
    return [
        FeedbackRow(**{**row, "sample_id": int(row["sample_id"]), "at": row["at"].isoformat()})
        for row in frame.to_dict("records")
    ]


@router.post("/export", response_model=ExportResponse)
def export(body: ExportRequest, state: Annotated[ApiState, Depends(get_state)]) -> ExportResponse:
    """Export a build (review decisions applied) under ``<home>/exports/<name>``."""
    logical = state.builds.load(body.build_id)
    out = state.repo.config.home_path / "exports" / (body.name or logical.build_id)
    with state.write_lock:
        report = export_dataset(
            state.repo, logical, out, formats=body.formats,
            supplementary=body.supplementary, overwrite=body.overwrite,
        )
    return ExportResponse(
        path=str(report.path), samples=report.samples, dropped=report.dropped,
        counts=report.counts, files=report.files,
    )
