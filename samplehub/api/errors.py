"""The one exception handler: SampleHub errors become 4xx responses with their message.

The status follows the builtin each error also subclasses (``samplehub.errors``): a
missing thing (``KeyError``, ``FileNotFoundError``) is 404, bad input (``ValueError``)
422, an existing export 409, a missing index or model (``RuntimeError``) 409, a missing
optional dependency 501, anything else 400.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from samplehub.errors import SampleHubError

STATUS_BY_BUILTIN: tuple[tuple[type[BaseException], int], ...] = (
    (KeyError, 404),
    (FileNotFoundError, 404),
    (FileExistsError, 409),
    (PermissionError, 403),
    (ValueError, 422),
    (RuntimeError, 409),
    (ImportError, 501),
)


def status_for(exc: SampleHubError) -> int:
    """HTTP status of a SampleHub error."""
    for builtin, status in STATUS_BY_BUILTIN:
        if isinstance(exc, builtin):
            return status
    return 400


def install_error_handler(app: FastAPI) -> None:
    """Map every :class:`SampleHubError` to ``{"detail": message, "error": class name}``."""

    @app.exception_handler(SampleHubError)
    async def handle(request: Request, exc: SampleHubError) -> JSONResponse:
        return JSONResponse(
            status_code=status_for(exc),
            content={"detail": str(exc), "error": type(exc).__name__},
        )
