"""``samplehub serve``: the HTTP API and the review page with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from samplehub.cli.common import Overrides, open_repository


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    overrides: Overrides = None,
) -> None:
    """Serve the API (/docs), the review page (/review) and OpenAPI (/openapi.json)."""
    import uvicorn

    from samplehub.api import create_app

    app = create_app(open_repository(overrides))
    print(f"SampleHub API on http://{host}:{port}/docs, review page on http://{host}:{port}/review")
    uvicorn.run(app, host=host, port=port, log_level="info")
