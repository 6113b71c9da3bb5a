"""``samplehub serve``: the HTTP API and the review page with uvicorn workers."""

from __future__ import annotations

from typing import Annotated

import typer

from samplehub.cli.common import Overrides


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="worker processes sharing the socket; default: one per core"),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="request threads per worker (queries run at once); default 40"),
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Serve the API (/docs), the review page (/review) and OpenAPI (/openapi.json)."""
    from samplehub.api.serving import REQUEST_THREADS, access_policy, default_workers
    from samplehub.api.serving import serve as run

    access = access_policy(overrides or [], host)
    count = workers or default_workers()
    print(f"SampleHub API on http://{host}:{port}/docs, review page on http://{host}:{port}/review"
          f" ({count} worker{'s' if count > 1 else ''}"
          f"{'; calls need the API token' if access.protect_reads else ''}"
          f"{'; writes need the API token' if access.token and not access.protect_reads else ''})",
          flush=True)
    run(overrides or [], host=host, port=port, workers=count,
        request_threads=threads or REQUEST_THREADS)
