"""Who may call the API: a bearer token for every write, and for every call off loopback.

On loopback with no token configured the API is open, as a local tool. With a token
(``api_token``, or the ``SAMPLEHUB_API_TOKEN`` environment variable through
``conf/config.yaml``), every mutating call (anything but GET, HEAD, OPTIONS and the
query POSTs) needs it.
A server bound beyond loopback needs it for every call, and refuses to start without one.
The token comes as ``Authorization: Bearer <token>`` (OpenAPI declares the scheme, so
``/docs`` has an Authorize button) or as the ``samplehub_token`` cookie that the pages set
when a call answers 401, so their ``<img>`` requests carry it too. The pages themselves,
their static files, ``/docs``, ``/openapi.json`` and ``/health`` stay readable: they hold
no data, and the pages must load to ask for the token.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from samplehub.errors import ConfigError

COOKIE = "samplehub_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_POSTS = frozenset({"/query", "/query/image"})
"""POSTs that only read (a query spec or an image is the body): treated as reads."""
PUBLIC_PATHS = frozenset({"/", "/review", "/labelling", "/docs", "/docs/oauth2-redirect",
                          "/openapi.json", "/health"})
bearer = HTTPBearer(auto_error=False, description="the server's API token (api_token)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface to bind) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """The token a server checks, and whether reads need it too.

    Attributes:
        token: the API token; None: no token configured.
        protect_reads: reads need the token as well (a server bound beyond loopback).
    """

    token: str | None = None
    protect_reads: bool = False

    @classmethod
    def for_host(cls, host: str, token: str | None) -> AccessPolicy:
        """The policy of a server bound to ``host``.

        Raises:
            ConfigError: ``host`` is beyond loopback and no token is configured.
        """
        if is_loopback(host):
            return cls(token or None, protect_reads=False)
        if not token:
            raise ConfigError(
                f"refusing to serve on {host} without an API token: set SAMPLEHUB_API_TOKEN "
                "(or api_token in conf/config.yaml), or bind 127.0.0.1")
        return cls(token, protect_reads=True)

    def needs_token(self, method: str, path: str) -> bool:
        """Whether a call of ``method`` on ``path`` must present the token."""
        if self.token is None:
            return False
        if method in SAFE_METHODS and (path in PUBLIC_PATHS or path.startswith("/static/")):
            return False
        reads = method in SAFE_METHODS or (method == "POST" and path in READ_ONLY_POSTS)
        return not reads or self.protect_reads

    def accepts(self, presented: str | None) -> bool:
        """Whether ``presented`` is the token (compared in constant time)."""
        return bool(self.token and presented) and hmac.compare_digest(
            str(presented).encode(), str(self.token).encode())


def token_dependency(policy: AccessPolicy) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency enforcing ``policy`` on the routes it is attached to.

    ``async`` because it never waits (FastAPI would run a plain ``def`` in its thread pool,
    a round trip on every request).
    """

    async def check(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if not policy.needs_token(request.method, request.url.path):
            return
        cookie = request.cookies.get(COOKIE)
        presented = credentials.credentials if credentials else (
            unquote(cookie) if cookie else None)
        if not policy.accepts(presented):
            raise HTTPException(
                status_code=401,
                detail="this call needs the server's API token: send Authorization: Bearer "
                       "<token>",
                headers={"WWW-Authenticate": "Bearer"})

    return check
