"""The one exception handler: SampleHub errors become 4xx responses with their message.

The status follows the builtin each error also subclasses (``samplehub.errors``): a
missing thing (``KeyError``, ``FileNotFoundError``) is 404, bad input (``ValueError``)
422, an existing export 409, a missing index or model (``RuntimeError``) 409, a missing
optional dependency 501, anything else 400.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from samplehub.errors import SampleHubError, UploadTooLargeError

STATUS_BY_BUILTIN: tuple[tuple[type[BaseException], int], ...] = (
    (UploadTooLargeError, 413),
    (KeyError, 404),
    (FileNotFoundError, 404),
    (FileExistsError, 409),
    (PermissionError, 403),
    (ValueError, 422),
    (RuntimeError, 409),
    (ImportError, 501),
    (OSError, 503),  # StorageError: the catalog's or the store's storage is unavailable
)


def status_for(exc: SampleHubError) -> int:
    """HTTP status of a SampleHub error."""
    for builtin, status in STATUS_BY_BUILTIN:
        if isinstance(exc, builtin):
            return status
    return 400


# an absolute path of two or more parts, as library and OS messages write them
_PATH = re.compile(r"(?<![\w.:/])(/(?:[^\s'\"`,;()\[\]{}<>/]+/)+)([^\s'\"`,;()\[\]{}<>]*)")


def redact_paths(message: str) -> str:
    """``message`` without the server's directories.

    ``/srv/home/catalog/x.parquet`` becomes ``.../x.parquet``: a remote client learns which
    file, not where it lives.
    """
    return _PATH.sub(lambda m: f".../{m.group(2)}" if m.group(2) else "...", message)


def install_error_handler(app: FastAPI) -> None:
    """Map every :class:`SampleHubError` to ``{"detail": message, "error": class name}``.

    Messages go to remote clients with server paths redacted (:func:`redact_paths`).
    """

    @app.exception_handler(SampleHubError)
    async def handle(request: Request, exc: SampleHubError) -> JSONResponse:
        return JSONResponse(
            status_code=status_for(exc),
            content={"detail": redact_paths(str(exc)), "error": type(exc).__name__},
        )
