"""``samplehub serve``: the HTTP API and the review page with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Hydra override KEY=VALUE (repeatable)"),
    ] = None,
) -> None:
    """Serve the API (/docs), the review page (/review) and OpenAPI (/openapi.json)."""
    import uvicorn

    from samplehub.api import create_app
    from samplehub.repository import Repository

    app = create_app(Repository.open(overrides or []))
    print(f"SampleHub API on http://{host}:{port}/docs, review page on http://{host}:{port}/review")
    uvicorn.run(app, host=host, port=port, log_level="info")
