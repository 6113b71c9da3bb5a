"""A serving worker runs each request single-threaded in every native thread pool."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_info, threadpool_limits

from samplehub.api.serving import served_app


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_worker_limits_blas_to_one_thread(tmp_path: Path) -> None:
    before = threadpool_info()
    try:
        app = served_app([f"home={tmp_path / 'home'}", "graph=embedded"])
        assert app.openapi()["info"]["title"]
        assert blas_threads() == {1}
    finally:
        threadpool_limits({p["prefix"]: p["num_threads"] for p in before})
