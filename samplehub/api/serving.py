"""``samplehub serve``: the API in several uvicorn worker processes on one socket.

A query is CPU work in numpy, faiss and Python; one process's threads share one GIL, so
on a multi-core machine the server runs ``workers`` processes that accept from one
listening socket (uvicorn's supervisor binds it, starts the workers and restarts one that
dies). Each worker opens the repository itself and loads its query context before it
accepts a connection, so no request pays the first load. The index is read from the same
files by every worker (memory-mapped where :mod:`samplehub.index` maps it, one page-cache
copy for all).

Each worker reloads a changed repository in the background
(:class:`~samplehub.retrieval.context.QueryContexts` with ``background=True``): a newly
published index version is picked up without a restart and without stalling requests.
Each request runs single-threaded inside faiss (``omp_set_num_threads(1)``), numpy's
BLAS (``threadpoolctl``) and torch (``torch.set_num_threads(1)``; it widens the exact
scan's fp16 vectors and encodes uploads): concurrency comes from the workers and their
request threads, and a thread team per request on top of them oversubscribes the cores;
a BLAS team whose second thread waits for a core busy with the other worker made the
exact scan's products many times slower than one thread (torch's team, the fp16
widening seven times). OpenMP's thread count is a setting of the thread that
calls it, not of the process: the query functions set it in the request thread that runs
them (:func:`one_omp_thread`). Set only in the worker's main thread, it left every request
thread with OpenMP's default team (a thread per core); at 100,000 views a label query
then cost 39 ms of CPU in one request thread, the second OpenMP thread spinning beside
the first, against 8 ms single-threaded.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from fastapi import FastAPI

from samplehub.api.app import create_app
from samplehub.api.auth import AccessPolicy
from samplehub.errors import SampleHubError
from samplehub.repository import Repository

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

HEALTHCHECK_S = 60
"""Seconds the supervisor waits for a worker's health ping: a worker loading a
million-sample context answers late, and a short wait would kill it as hung."""


REQUEST_THREADS = 40
"""Request threads per worker (anyio's default; ``bench/serving.py`` measured others)."""


def default_workers() -> int:
    """One worker per core the process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def access_policy(overrides: Sequence[str], host: str) -> AccessPolicy:
    """The :class:`AccessPolicy` of a server on ``host`` with the configured ``api_token``.

    Raises:
        ConfigError: ``host`` is beyond loopback and no token is configured.
    """
    from samplehub.config import load_config

    return AccessPolicy.for_host(host, load_config(list(overrides)).api_token)


def one_omp_thread(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run with OpenMP (faiss, its BLAS) limited to one thread in its caller.

    ``omp_set_num_threads`` sets the calling thread's OpenMP setting only: the request
    threads of a worker (anyio's) start with OpenMP's default, a team of a thread per
    core for every faiss search, whatever the worker's main thread set. The call costs
    well under a microsecond, so it is made on every call.
    """
    import faiss

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        faiss.omp_set_num_threads(1)
        return function(*args, **kwargs)

    return call


def served_app(overrides: Sequence[str] = (), request_threads: int | None = REQUEST_THREADS,
               host: str = "127.0.0.1") -> FastAPI:
    """The app one worker serves: background reloads on, its query context loaded.

    Args:
        overrides: Hydra overrides of the configuration (``--set``).
        request_threads: threads running requests at once in this worker
            (:func:`~samplehub.api.app.create_app`).
        host: the interface the server listens on (:meth:`AccessPolicy.for_host`).

    Returns:
        The app. A repository whose context cannot load yet (no label graph, say) is
        still served; its queries report why.
    """
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    from samplehub.retrieval.query import query_by_image, run_query

    faiss.omp_set_num_threads(1)  # this thread's: the context loads here
    threadpool_limits(1, user_api="blas")  # for this process's lifetime (module docstring)
    torch.set_num_threads(1)  # likewise; torch applies it in every thread it later runs on
    repo = Repository.open(list(overrides))
    access = AccessPolicy.for_host(host, repo.config.api_token)
    contexts = repo.query_contexts
    contexts.background = True
    try:
        contexts.current()
    except SampleHubError as exc:
        log.warning("serving without a loaded query context: %s", exc)
    return create_app(repo, query=one_omp_thread(run_query),
                      image_query=one_omp_thread(query_by_image),
                      request_threads=request_threads, access=access)


def serve(
    overrides: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    request_threads: int = REQUEST_THREADS,
    log_level: str = "info",
) -> None:
    """Serve the API with ``workers`` processes until interrupted (SIGINT or SIGTERM).

    Args:
        overrides: Hydra overrides, passed to every worker.
        host: interface to listen on.
        port: TCP port.
        workers: worker processes; None: :func:`default_workers`.
        request_threads: threads running requests at once in each worker.
        log_level: uvicorn's log level.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    access_policy(overrides, host)  # refuse before binding (ConfigError names the fix)
    # A picklable factory (not an import string) carries the overrides to the spawned
    # workers; uvicorn.run accepts only import strings with workers > 1, so this runs
    # uvicorn's own supervisor directly.
    config = uvicorn.Config(
        functools.partial(served_app, tuple(overrides), request_threads, host), factory=True,
        host=host, port=port, workers=workers, log_level=log_level,
        timeout_worker_healthcheck=HEALTHCHECK_S,
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[config.bind_socket()]).run()
