"""What every route needs: the repository, the query functions and the build store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from samplehub.export.builder import QueryFunction
from samplehub.export.builds import BuildStore
from samplehub.export.feedback import Rejections
from samplehub.repository import Repository
from samplehub.retrieval.types import QueryResult

ImageQueryFunction = Callable[..., QueryResult]


@dataclass
class ApiState:
    """Shared by the routes of one app.

    Attributes:
        repo: the repository served.
        query: ``run_query(repo, spec)``.
        image_query: ``query_by_image(repo, image=..., sample_id=..., k=...)``.
        builds: stored logical datasets (``<home>/builds``).
        write_lock: serializes the exports of this process (feedback appends take the
            repository's ``locks.table("feedback")``, shared by every worker).
        rejections: each query's rejected samples, re-read when the feedback changed.
    """

    repo: Repository
    query: QueryFunction
    image_query: ImageQueryFunction
    builds: BuildStore
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    rejections: Rejections = field(init=False)

    def __post_init__(self) -> None:
        """Start the rejections of the served repository's catalog."""
        self.rejections = Rejections(self.repo.catalog)


async def get_state(request: Request) -> ApiState:
    """FastAPI dependency: the app's state.

    ``async`` because it never waits: FastAPI runs a plain ``def`` dependency in its
    thread pool, a round trip per request (and, with every request thread busy, a wait
    behind the queued queries) for one attribute read.
    """
    return request.app.state.samplehub  # type: ignore[no-any-return]
