"""The FastAPI application: query, build, review, feedback, export, samples, labels, labelling.

``create_app(repo)`` serves one repository. OpenAPI is at ``/openapi.json``, interactive
docs at ``/docs``, the review page at ``/review``, the labelling page at ``/labelling``.
The query functions default to :mod:`samplehub.retrieval.query` and can be replaced
(tests pass a double).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from samplehub.api.auth import AccessPolicy, token_dependency
from samplehub.api.errors import install_error_handler
from samplehub.api.routes import builds, health, labelling, labels, samples
from samplehub.api.routes import query as query_routes
from samplehub.api.state import ApiState, ImageQueryFunction
from samplehub.export.builder import QueryFunction
from samplehub.export.builds import BuildStore
from samplehub.repository import Repository

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    repo: Repository,
    query: QueryFunction | None = None,
    image_query: ImageQueryFunction | None = None,
    request_threads: int | None = None,
    access: AccessPolicy | None = None,
) -> FastAPI:
    """The HTTP API of ``repo``.

    Args:
        repo: the repository to serve.
        query: ``run_query(repo, spec)``; default :func:`samplehub.retrieval.query.run_query`.
        image_query: ``query_by_image(repo, image=, sample_id=, k=)``; default
            :func:`samplehub.retrieval.query.query_by_image`.
        request_threads: threads that run the (synchronous) routes at once; requests
            beyond them wait in arrival order. None keeps anyio's default (40).
        access: who may call it (:mod:`samplehub.api.auth`); default: the configured
            ``api_token`` for writes, reads open (a loopback server).
    """
    if query is None or image_query is None:
        from samplehub.retrieval.query import query_by_image, run_query

        query = query or run_query
        image_query = image_query or query_by_image

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if request_threads is not None:
            # CPU-bound queries: threads beyond the cores only take turns on the GIL, and
            # a short pool lets queued requests finish in arrival order
            anyio.to_thread.current_default_thread_limiter().total_tokens = request_threads
        yield

    policy = access or AccessPolicy(repo.config.api_token)
    app = FastAPI(
        dependencies=[Depends(token_dependency(policy))],
        lifespan=lifespan,
        title="SampleHub",
        summary="Cross-dataset remote-sensing sample retrieval and dataset building.",
        version="0.1.0",
    )
    app.state.samplehub = ApiState(
        repo=repo,
        query=query,
        image_query=image_query,
        builds=BuildStore(repo.config.home_path / "builds"),
    )
    install_error_handler(app)
    for module in (query_routes, builds, samples, labels, labelling, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/review", include_in_schema=False)
    def review() -> FileResponse:
        return FileResponse(STATIC / "review.html")

    @app.get("/labelling", include_in_schema=False)
    def labelling_page() -> FileResponse:
        return FileResponse(STATIC / "labelling.html")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    return app
