"""GET /labels and GET /labels/{label}/associated (main paper, sections 3.3 and 3.4.1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from samplehub.api.models import AssociationOut, LabelOut
from samplehub.api.state import ApiState, get_state
from samplehub.labels.association import associated_labels
from samplehub.labels.graph import LabelGraph
from samplehub.labels.settings import GraphSettings, graph_settings_from_config
from samplehub.labels.workflow import open_store

router = APIRouter(tags=["labels"])


def label_graph(state: ApiState) -> tuple[GraphSettings, LabelGraph]:
    """The settings and the latest label graph of the served repository."""
    settings = graph_settings_from_config(state.repo.config)
    return settings, open_store(settings, state.repo.config.home_path).load()


@router.get("/labels", response_model=list[LabelOut])
def labels(
    state: Annotated[ApiState, Depends(get_state)],
    origin: Annotated[str | None, Query(description="base, unified or dataset")] = None,
    dataset: Annotated[str | None, Query(description="only this dataset's labels")] = None,
) -> list[LabelOut]:
    """Labels of the latest label graph with their parents and unified label."""
    _, graph = label_graph(state)
    out = []
    for label_id in graph.labels(origin, dataset):
        data = graph.label(label_id)
        out.append(
            LabelOut(
                id=label_id, name=data["name"], origin=data["origin"],
                dataset=data.get("dataset"), level=data.get("level"),
                parents=graph.parents(label_id), maps_to=graph.mapped_to(label_id),
            )
        )
    return out


@router.get("/labels/{label:path}/associated", response_model=list[AssociationOut])
def associated(
    label: str,
    state: Annotated[ApiState, Depends(get_state)],
    max_distance: Annotated[float | None, Query(ge=0, description="Eq. 1 distance bound")] = None,
) -> list[AssociationOut]:
    """Associated labels within ``max_distance`` (Eq. 1 weighted shortest paths)."""
    settings, graph = label_graph(state)
    bound = state.repo.config.retrieval.max_label_distance if max_distance is None else max_distance
    found = associated_labels(graph, label, bound, settings.association)
    return [
        AssociationOut(
            label=a.label, name=a.name, origin=a.origin, dataset=a.dataset,
            distance=a.distance, path=list(a.path), relations=list(a.relations),
        )
        for a in found
    ]
