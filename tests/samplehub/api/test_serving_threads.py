"""A serving worker runs each request single-threaded in every native thread pool."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path

import faiss
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from samplehub.api.auth import AccessPolicy, token_dependency
from samplehub.api.serving import one_omp_thread, served_app
from samplehub.api.state import get_state
from samplehub.retrieval.query import query_by_image, run_query


def in_new_thread(function: Callable[[], int]) -> int:
    """``function()`` in a fresh thread, as a worker's request threads run the routes."""
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(function()))
    thread.start()
    thread.join()
    return out[0]


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_worker_limits_blas_and_torch_to_one_thread(tmp_path: Path) -> None:
    before = threadpool_info()
    torch_threads = torch.get_num_threads()
    try:
        app = served_app([f"home={tmp_path / 'home'}", "graph=embedded"])
        assert app.openapi()["info"]["title"]
        assert blas_threads() == {1}
        # torch's setting holds in threads started later (a request thread)
        assert in_new_thread(torch.get_num_threads) == 1
    finally:
        threadpool_limits({p["prefix"]: p["num_threads"] for p in before})
        torch.set_num_threads(torch_threads)


def test_request_threads_run_faiss_on_one_thread(tmp_path: Path) -> None:
    # OpenMP's thread count belongs to the thread that sets it: a fresh thread (a request
    # thread) has OpenMP's default (a thread per core) whatever this thread set
    before_omp = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        default = in_new_thread(faiss.omp_get_max_threads)
        assert in_new_thread(one_omp_thread(faiss.omp_get_max_threads)) == 1 <= default
    finally:
        faiss.omp_set_num_threads(before_omp)
    before = threadpool_info()
    try:
        app = served_app([f"home={tmp_path / 'home'}", "graph=embedded"])
    finally:
        threadpool_limits({p["prefix"]: p["num_threads"] for p in before})
        faiss.omp_set_num_threads(before_omp)
    state = app.state.samplehub
    assert state.query.__wrapped__ is run_query
    assert state.image_query.__wrapped__ is query_by_image


def test_per_request_dependencies_need_no_request_thread() -> None:
    # FastAPI runs a plain def dependency in its thread pool: a round trip per request
    # (and a wait behind the queued queries when every request thread is busy)
    assert inspect.iscoroutinefunction(get_state)
    assert inspect.iscoroutinefunction(token_dependency(AccessPolicy(None)))
