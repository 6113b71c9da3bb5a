"""Background reloads of the query context: queries keep the old one until the swap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from query_fixture import Fixture

from samplehub.catalog import schema
from samplehub.index.files import published_folder
from samplehub.index.ivfpq import load_index, save_index
from samplehub.index.lifecycle import index_path
from samplehub.models.feature_model import model_version
from samplehub.retrieval import context as context_module
from samplehub.retrieval.context import QueryContext, QueryContexts
from samplehub.retrieval.expansion import LabelMatch
from samplehub.retrieval.query import query_context
from samplehub.retrieval.types import QuerySpec

RIVER = QuerySpec(labels=("river",), k=5)


def publish_same_index(fixture: Fixture) -> str:
    """Publish the current index again as a new version; returns the version's name."""
    path = index_path(fixture.repo.config, model_version(fixture.repo.config))
    save_index(load_index(path), path)
    return published_folder(path).name


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def test_background_reload_serves_the_old_context_then_swaps_a_warm_one(built: Fixture) -> None:
    contexts = QueryContexts(built.repo, background=True, poll_s=0.05)
    try:
        old = contexts.current()
        query_context(old, RIVER, built.repo.config.retrieval)  # memoises "river"
        version = publish_same_index(built)
        assert contexts.current() is old  # a query never waits for the reload
        until(lambda: contexts.reloads == 1)
        new = contexts.current()
        assert new is not old and new.index_version == version != old.index_version
        warmed = [k.query for k in new._exact.keys() if isinstance(k, LabelMatch)]
        assert warmed == ["river"]  # the first "river" query after the swap is not cold
        assert query_context(new, RIVER, built.repo.config.retrieval).hits
    finally:
        contexts.close()


def test_synchronous_mode_loads_in_the_query(built: Fixture) -> None:
    contexts = QueryContexts(built.repo)
    old = contexts.current()
    version = publish_same_index(built)
    assert contexts.current().index_version == version != old.index_version


def test_a_failed_reload_keeps_the_old_context_and_is_retried(
    built: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = QueryContexts(built.repo, background=True, poll_s=0.05, retry_s=0.1)
    real_load = context_module.load_context
    calls = []

    def broken(*args: object) -> QueryContext:
        calls.append(1)
        raise OSError("half-written repository state")

    try:
        old = contexts.current()
        monkeypatch.setattr(context_module, "load_context", broken)
        version = publish_same_index(built)
        until(lambda: len(calls) >= 2)  # retried after retry_s
        assert contexts.current() is old and contexts.reloads == 0
        monkeypatch.setattr(context_module, "load_context", real_load)
        until(lambda: contexts.reloads == 1)
        assert contexts.current().index_version == version
    finally:
        contexts.close()


def test_concurrent_queries_during_reloads_all_succeed(built: Fixture) -> None:
    contexts = QueryContexts(built.repo, background=True, poll_s=0.02)
    errors: list[BaseException] = []
    stop = threading.Event()
    answered = [0]

    def client() -> None:
        while not stop.is_set():
            try:
                assert query_context(contexts.current(), RIVER, built.repo.config.retrieval).hits
                answered[0] += 1
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    try:
        contexts.current()
        for t in threads:
            t.start()
        for expected in (1, 2, 3):
            publish_same_index(built)
            until(lambda n=expected: contexts.reloads == n)  # type: ignore[misc]
    finally:
        stop.set()
        for t in threads:
            t.join()
        contexts.close()
    assert errors == [] and answered[0] > 0


def test_a_new_index_version_alone_reuses_the_rest(built: Fixture) -> None:
    contexts = QueryContexts(built.repo)
    old = contexts.current()
    query_context(old, RIVER, built.repo.config.retrieval)
    publish_same_index(built)
    new = contexts.current()
    assert new.ivfpq is not None and old.ivfpq is not None
    assert new.ivfpq.index is not old.ivfpq.index  # the new version was loaded ...
    assert new.snapshot is old.snapshot and new.graph is old.graph  # ... nothing else
    assert new.prototypes is old.prototypes and new._exact is old._exact


def test_new_samples_reload_the_snapshot_and_keep_the_index(built: Fixture) -> None:
    contexts = QueryContexts(built.repo)
    old = contexts.current()
    row = built.repo.catalog.read("samples").slice(0, 1).to_pylist()[0]
    extra = {**row, "sample_id": 777_777, "dataset": "delta", "relpath": "x.png"}
    built.repo.catalog.append("samples", pa.Table.from_pylist([extra], schema=schema.SAMPLES))
    new = contexts.current()
    assert len(new.snapshot) == len(old.snapshot) + 1 and new.graph is old.graph
    assert new.ivfpq is not None and old.ivfpq is not None
    assert new.ivfpq.index is old.ivfpq.index  # same index, positions mapped to the new rows
    added = int(np.flatnonzero(new.snapshot.sample_id == 777_777)[0])
    assert new.ivfpq.positions.position(added) == -1  # catalogued, not indexed
    assert new._exact is not old._exact  # exact matches depend on the samples
