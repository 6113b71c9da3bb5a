"""``samplehub serve --workers 2`` on loopback picks up a new index version under load.

The real server (uvicorn supervisor and two worker processes) over the tiny repository
of ``query_fixture.py``: while four clients query it back to back, a new dataset is
catalogued and a new index version holding its features is published; every worker
then answers from that version, without a restart and without a failed request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from loopback import samplehub_server
from query_fixture import Fixture, unit

from samplehub.catalog import schema
from samplehub.feature_store import feature_table
from samplehub.index.files import published_folder
from samplehub.index.lifecycle import index_path, update_ivfpq_index
from samplehub.models.feature_model import model_version

pytestmark = pytest.mark.integration

WORKERS = 2


@contextlib.contextmanager
def served(fixture: Fixture, log: Path) -> Iterator[str]:
    """``samplehub serve`` of the fixture's home; yields its URL; stopped by process group."""
    with samplehub_server([f"home={fixture.repo.config.home_path}"], WORKERS, log,
                          timeout=60) as server:
        yield server.url


def every_worker(url: str, polls: int = 16) -> list[dict]:
    """/health from new connections until every worker answered (at most ``polls``)."""
    answers: dict[int, dict] = {}
    for _ in range(polls):
        answer = httpx.get(f"{url}/health").json()
        answers[answer["pid"]] = answer
        if len(answers) == WORKERS:
            break
    return list(answers.values())


def add_dataset(fixture: Fixture, like: int, count: int = 5) -> np.ndarray:
    """Catalog ``count`` samples of a new dataset ``gamma`` whose features are near-copies of
    sample ``like``'s, then publish the index version that holds them; their ids."""
    repo = fixture.repo
    rows = [r for r in repo.catalog.read("samples").to_pylist() if r["sample_id"] == like]
    ids = 900_000 + np.arange(count)
    new = [{**rows[0], "sample_id": int(i), "dataset": "gamma",
            "relpath": f"River/{i}.png", "uri": f"/data/gamma/River/{i}.png"} for i in ids]
    repo.catalog.append("samples", pa.Table.from_pylist(new, schema=schema.SAMPLES))
    centre = fixture.centres["river"]
    xb = unit(np.tile(centre, (count, 1)) + 0.01 * np.random.default_rng(1).standard_normal(
        (count, len(centre))))
    version = model_version(repo.config)
    repo.catalog.append("features", feature_table(ids, "gamma", version, xb))
    assert update_ivfpq_index(repo).action == "added"
    return ids


def test_a_new_index_version_is_served_without_restart_or_failed_request(
    built: Fixture, tmp_path: Path
) -> None:
    f = built.frame
    river = int(f["sample_id"][(f["label"] == "River") & (f["dataset"] == "alpha")][0])
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                if i % 2:
                    response = http.post(f"{base}/query", json={"labels": ["river"], "k": 5})
                else:
                    response = http.post(f"{base}/query/image",
                                         data={"sample_id": str(river), "k": "5"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:300]}")
                answered[0] += 1

    with served(built, tmp_path / "server.log") as base:
        before = every_worker(base)
        assert len(before) == WORKERS
        old_version = before[0]["context"]["index_version"]
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            new_ids = add_dataset(built, like=river)
            path = index_path(built.repo.config, model_version(built.repo.config))
            new_version = published_folder(path).name
            deadline = time.monotonic() + 20
            while True:
                workers = every_worker(base)
                versions = {w["context"]["index_version"] for w in workers if w["context"]}
                if len(workers) == WORKERS and versions == {new_version}:
                    break
                assert time.monotonic() < deadline, workers
                time.sleep(0.2)
            time.sleep(0.5)  # more load on the new version
        finally:
            stop.set()
            for t in threads:
                t.join()
        # the same worker processes (no restart), each swapped its context in the background
        assert {w["pid"] for w in workers} == {w["pid"] for w in before}
        assert all(w["reloads"] >= 1 for w in workers) and new_version != old_version
        for _ in range(2 * WORKERS):  # new connections: either worker answers
            hits = httpx.post(f"{base}/query/image",
                              data={"sample_id": str(river), "k": "5"}).json()["hits"]
            assert {h["sample_id"] for h in hits} <= set(new_ids.tolist())
    assert failures == [] and answered[0] > 20
