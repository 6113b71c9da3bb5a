"""GET /health: which worker answered and which repository state it serves."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from samplehub.api.state import ApiState, get_state

router = APIRouter(tags=["health"])


class ServedContext(BaseModel):
    """The query context a worker serves now.

    Attributes:
        samples: catalog rows in its snapshot.
        indexed: vectors in its IVF-PQ index (0 without one).
        model_version: the feature model version of the index.
        index_version: the published index version folder it was read from.
        label_graph_version: the label graph version.
    """

    samples: int
    indexed: int
    model_version: str | None
    index_version: str | None
    label_graph_version: int


class Health(BaseModel):
    """A worker's answer.

    Attributes:
        pid: the worker process.
        context: what it serves; None before its first query context was loaded.
        reloading: a background reload is running (the old context is served meanwhile).
        reloads: contexts swapped in by background reloads since the worker started.
        swapped_at: when the last of them was swapped in (Unix time); None before one.
    """

    pid: int
    context: ServedContext | None
    reloading: bool
    reloads: int
    swapped_at: float | None


@router.get("/health", response_model=Health)
async def health(state: Annotated[ApiState, Depends(get_state)]) -> Health:
    """The worker's pid and the repository state it serves; loads and checks nothing.

    It runs on the event loop, not in the request threads, so it answers at once even
    while every request thread is busy with a query.
    """
    contexts = state.repo.query_contexts
    ctx = contexts.served()
    served = None
    if ctx is not None:
        served = ServedContext(
            samples=len(ctx.snapshot),
            indexed=0 if ctx.ivfpq is None else ctx.ivfpq.ntotal,
            model_version=ctx.model_version,
            index_version=ctx.index_version,
            label_graph_version=ctx.graph.version,
        )
    return Health(pid=os.getpid(), context=served, reloading=contexts.reloading,
                  reloads=contexts.reloads, swapped_at=contexts.swapped_at)
