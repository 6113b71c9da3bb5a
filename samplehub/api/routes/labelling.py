"""The labelling page's API: views, 2-D points, chip and mask pictures, labels, publish.

Unsupervised labelling paper (``../shared/papers/unsupervised-labelling-cnn-gnn.txt``),
section 2.8 front end: chip-level and segment-level points of the 2-D projection, a
linked image panel of chip thumbnails or super-pixel masks, and labels applied to a
brushed selection (section 3.1). Pixels come from the image store through the catalog,
as ``/samples/{id}/composite.png`` serves them.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Response

from samplehub.api.models import (
    ChipPointOut,
    LabellingViewOut,
    LabelRequest,
    LabelsOut,
    ProgressOut,
    PublishOut,
    PublishRequest,
    SegmentLabelOut,
    SegmentPointOut,
)
from samplehub.api.routes.samples import CACHE, parse_bands, parse_stretch, png
from samplehub.api.state import ApiState, get_state
from samplehub.bands import rgb_composite
from samplehub.errors import LabellingError, LabellingViewNotFoundError
from samplehub.labelling.view import LabellingView, LabelState, publish_labels

router = APIRouter(prefix="/labelling", tags=["labelling"])
HIGHLIGHT = np.array([255, 214, 10], dtype=np.float32)
"""Brushed segments are tinted and outlined in the scatter's selection yellow."""


def open_view(state: ApiState, dataset: str) -> LabellingView:
    """The live version of a view of the served repository's home."""
    return LabellingView.open(state.repo.config.home_path, dataset)


def view_out(view: LabellingView) -> LabellingViewOut:
    """The summary of a view."""
    return LabellingViewOut(dataset=view.dataset, chips=len(view.chips),
                            segments=len(view.segments), created_at=view.created_at)


def labels_out(view: LabellingView, state: LabelState) -> LabelsOut:
    """Every label of ``view`` in ``state`` and the progress."""
    current = view.current(state)
    return LabelsOut(
        chips=current.chips,
        segments=[SegmentLabelOut(id=s, segment=g, label=label)
                  for (s, g), label in sorted(current.segments.items())],
        progress=ProgressOut(**view.progress(state).__dict__),
    )


def chip_picture(
    state: ApiState, view: LabellingView, sample_id: str, bands: str | None, stretch: str
) -> np.ndarray:
    """A chip's uint8 (3, H, W) composite; the chip must belong to the view."""
    if not sample_id.isdigit() or not view.has_chip(sample_id):
        raise LabellingViewNotFoundError(
            f"labelling view {view.dataset!r} has no chip {sample_id!r}"
        )
    row, pixels = state.repo.image(int(sample_id))
    sensor = None if row["sensor"] is None else str(row["sensor"])
    return rgb_composite(  # type: ignore[call-overload,no-any-return]
        pixels, list(row["bands"]), sensor, parse_bands(bands), parse_stretch(stretch)
    )


def parse_segments(segments: str | None) -> list[int] | None:
    """``"3,7,12"`` -> segment ids.

    Raises:
        LabellingError: an entry that is not an integer.
    """
    if segments is None or not segments.strip():
        return None
    try:
        return [int(s) for s in segments.split(",") if s.strip()]
    except ValueError as exc:
        raise LabellingError(
            f"segments must be comma-separated segment ids, got {segments!r}"
        ) from exc


def mask_overlay(picture: np.ndarray, mask: np.ndarray, selected: list[int] | None) -> np.ndarray:
    """Super-pixel boundaries over a chip; ``selected`` segments tinted, the rest dimmed.

    Args:
        picture: uint8 (3, H, W) composite.
        mask: (H, W) SLIC label image.
        selected: segment ids to highlight; None outlines every segment alike.
    """
    image = picture.transpose(1, 2, 0).astype(np.float32)
    edge = np.zeros(mask.shape, dtype=bool)
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:-1, :] |= mask[:-1, :] != mask[1:, :]
    if selected is None:
        image[edge] = 0.5 * image[edge] + 0.5 * 255
    else:
        inside = np.isin(mask, selected)
        image[~inside] *= 0.35
        image[inside] = 0.7 * image[inside] + 0.3 * HIGHLIGHT
        image[edge & inside] = HIGHLIGHT
        image[edge & ~inside] = 0.5 * image[edge & ~inside] + 0.5 * 160
    return np.clip(image, 0, 255).astype(np.uint8).transpose(2, 0, 1)


@router.get("/views", response_model=list[LabellingViewOut])
def views(state: Annotated[ApiState, Depends(get_state)]) -> list[LabellingViewOut]:
    """The stored labelling views."""
    home = state.repo.config.home_path
    return [view_out(LabellingView.open(home, name)) for name in LabellingView.names(home)]


@router.get("/views/{dataset}", response_model=LabellingViewOut)
def view(dataset: str, state: Annotated[ApiState, Depends(get_state)]) -> LabellingViewOut:
    """One view's counts."""
    return view_out(open_view(state, dataset))


@router.get("/views/{dataset}/chips", response_model=list[ChipPointOut])
def chips(dataset: str, state: Annotated[ApiState, Depends(get_state)]) -> list[ChipPointOut]:
    """Chip-level points (2-D projection of the chip similarity) with their labels."""
    found = open_view(state, dataset)
    labels = found.labels.state().chips
    return [ChipPointOut(id=i, x=x, y=y, label=labels.get(i))
            for i, x, y in found.chips[["sample_id", "x", "y"]].itertuples(index=False)]


@router.get("/views/{dataset}/segments", response_model=list[SegmentPointOut])
def segments(
    dataset: str,
    state: Annotated[ApiState, Depends(get_state)],
    chips: Annotated[str | None, Query(description="only these chips' segments: "
                                                   "comma-separated sample_ids")] = None,
) -> list[SegmentPointOut]:
    """Segment-level points (2-D projection of the node embeddings) with their labels."""
    found = open_view(state, dataset)
    frame = found.segments
    if chips:
        wanted = found.check_chips(c for c in chips.split(",") if c.strip())
        frame = frame[frame["sample_id"].isin(wanted)]
    labels = found.labels.state().segments
    return [
        SegmentPointOut(id=i, segment=int(g), x=x, y=y, label=labels.get((i, int(g))))
        for i, g, x, y in frame[["sample_id", "segment", "x", "y"]].itertuples(index=False)
    ]


@router.get("/views/{dataset}/chips/{sample_id}/composite.png", response_class=Response)
def chip_composite(
    dataset: str,
    sample_id: str,
    state: Annotated[ApiState, Depends(get_state)],
    bands: Annotated[str | None, Query(description="band triple, e.g. B08,B04,B03")] = None,
    stretch: Annotated[str, Query(description="low,high percentiles")] = "2,98",
) -> Response:
    """A chip's band composite (default: the sensor's RGB)."""
    picture = chip_picture(state, open_view(state, dataset), sample_id, bands, stretch)
    return Response(png(picture), media_type="image/png", headers=CACHE)


@router.get("/views/{dataset}/chips/{sample_id}/segments.png", response_class=Response)
def chip_segments(
    dataset: str,
    sample_id: str,
    state: Annotated[ApiState, Depends(get_state)],
    segments: Annotated[str | None, Query(description="segment ids to highlight, "
                                                      "comma-separated")] = None,
    bands: Annotated[str | None, Query(description="band triple, e.g. B08,B04,B03")] = None,
    stretch: Annotated[str, Query(description="low,high percentiles")] = "2,98",
) -> Response:
    """The chip's SLIC segments over its composite, the brushed ones highlighted."""
    found = open_view(state, dataset)
    picture = chip_picture(state, found, sample_id, bands, stretch)
    mask = found.mask(sample_id)
    if mask.shape != picture.shape[1:]:
        raise LabellingError(
            f"chip {sample_id}: mask {mask.shape} does not match its pixels {picture.shape[1:]}"
        )
    selected = parse_segments(segments)
    if selected is not None:
        found.check_segments((sample_id, s) for s in selected)
    return Response(png(mask_overlay(picture, mask, selected)), media_type="image/png",
                    headers=CACHE)


@router.get("/views/{dataset}/labels", response_model=LabelsOut)
def labels(dataset: str, state: Annotated[ApiState, Depends(get_state)]) -> LabelsOut:
    """Every label of the view and the progress."""
    found = open_view(state, dataset)
    return labels_out(found, found.labels.state())


@router.post("/views/{dataset}/labels", response_model=LabelsOut)
def apply_label(
    dataset: str, body: LabelRequest, state: Annotated[ApiState, Depends(get_state)]
) -> LabelsOut:
    """Label the brushed chips (chip mode) or segments (segment mode); null clears."""
    found = open_view(state, dataset)
    done = found.apply_label(body.mode, body.label, body.chips,
                             [(s.id, s.segment) for s in body.segments])
    return labels_out(found, done)


@router.post("/views/{dataset}/undo", response_model=LabelsOut)
def undo(dataset: str, state: Annotated[ApiState, Depends(get_state)]) -> LabelsOut:
    """Take back the last label action."""
    found = open_view(state, dataset)
    return labels_out(found, found.labels.undo())


@router.post("/views/{dataset}/redo", response_model=LabelsOut)
def redo(dataset: str, state: Annotated[ApiState, Depends(get_state)]) -> LabelsOut:
    """Apply the last undone action again."""
    found = open_view(state, dataset)
    return labels_out(found, found.labels.redo())


@router.get("/views/{dataset}/progress", response_model=ProgressOut)
def progress(dataset: str, state: Annotated[ApiState, Depends(get_state)]) -> ProgressOut:
    """Labelled / total chips and segments."""
    return ProgressOut(**open_view(state, dataset).progress().__dict__)


@router.post("/views/{dataset}/publish", response_model=PublishOut)
def publish(
    dataset: str, state: Annotated[ApiState, Depends(get_state)],
    body: PublishRequest | None = None,
) -> PublishOut:
    """Write the labels as a new dataset under ``watch_root`` and ingest it.

    Chip labels become the classes of a folder-per-class dataset, segment labels masks
    beside it; the new-dataset sensor and the automation treat it like a dropped folder.
    """
    found = open_view(state, dataset)
    with state.write_lock:
        report = publish_labels(state.repo, found, body.name if body else None)
    ingest = report.ingest
    message = (
        f"labels unchanged since {report.dataset}; nothing new written"
        if report.unchanged else
        f"published {report.chips_published} chips in {len(report.labels)} "
        f"class{'' if len(report.labels) == 1 else 'es'} as "
        f"{report.dataset} ({report.masks} segment masks; {report.chips_unlabelled} unlabelled "
        f"chips left out); ingest added {ingest.added}"
    )
    return PublishOut(
        dataset=report.dataset, path=str(report.path), version=report.version,
        unchanged=report.unchanged, chips_published=report.chips_published,
        chips_unlabelled=report.chips_unlabelled, masks=report.masks,
        labels=list(report.labels), segment_labels=list(report.segment_labels),
        added=ingest.added, skipped=ingest.skipped, quarantined=len(ingest.quarantined),
        message=message,
    )
