"""Concurrent writers on one home: real processes started together, then the result checked.

Used by ``tests/samplehub/test_concurrent_writers.py`` and ``bench/reliability.py``.
Each scenario starts its processes at once on one home and reports, besides exit codes,
what a lost or duplicated write would show: rows against the source's files, duplicated
ids, and whether the repository check (:func:`samplehub.fsck.check_repository`) is clean.

- ``two_datasets``: ingests of two different datasets (Delta's optimistic commits; each
  dataset has its own Zarr store);
- ``same_dataset``: two ingests of one dataset (the dataset's writer lock: the second
  waits, then finds everything catalogued);
- ``features_twice``: two feature runs of one dataset, as two Dagster runs of one
  ``image_features`` partition would be (the features lock);
- ``ingest_during_index``: an ingest of a new dataset while the index is updated;
- ``feedback_posts``: 20 POST /feedback at once on ``samplehub serve`` with two worker
  processes, starting without a ``feedback`` table (:func:`feedback_storm`; the
  repository's feedback lock, with Delta's optimistic retries behind it).
"""

from __future__ import annotations

import math
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from kills import SAMPLEHUB, environment, index_snapshot, open_home, python_stage
from loopback import samplehub_server

from samplehub.fsck import check_repository
from samplehub.labels.cooccurrence import catalog_multilabel_samples
from samplehub.labels.workflow import catalog_label_trees, commit_label_trees
from samplehub.repository import Repository

REPO = Path(__file__).resolve().parents[1]
STORM_LABELS = ("river", "golf course")
"""Labels the feedback storm queries: UC Merced classes (``first`` in :func:`run_scenarios`)."""


def together(commands: list[list[str]], env: dict[str, str]) -> tuple[list[int], list[str], float]:
    """Start every command at once; exit codes, outputs and the wall time of the slowest."""
    started = time.perf_counter()
    processes = [subprocess.Popen(c, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT) for c in commands]
    outputs = [p.communicate()[0].decode(errors="replace") for p in processes]
    return [p.returncode for p in processes], outputs, time.perf_counter() - started


def files_under(folder: Path) -> int:
    """Image files of a folder-tree dataset."""
    return sum(1 for p in folder.rglob("*") if p.is_file())


def dataset_rows(repo: Repository, dataset: str) -> dict[str, int]:
    """Catalog rows, distinct ids and feature rows of one dataset."""
    ids = repo.catalog.read("samples", dataset, columns=["sample_id"]).column("sample_id")
    features = repo.catalog.read("features", dataset, columns=["sample_id"]).column("sample_id")
    return {"rows": len(ids), "distinct": len(np.unique(ids.to_numpy())),
            "feature_rows": len(features),
            "feature_distinct": len(np.unique(features.to_numpy()))}


def ingest(folder: Path, name: str, overrides: list[str]) -> list[str]:
    """argv of ``samplehub ingest`` of one folder."""
    return [SAMPLEHUB, "ingest", str(folder), "--name", name,
            *[arg for o in overrides for arg in ("--set", o)]]


def scenario(
    name: str, home: Path, commands: list[list[str]], overrides: list[str],
    expected: dict[str, int],
) -> dict[str, Any]:
    """Run ``commands`` together on ``home``; compare each dataset's rows with ``expected``."""
    codes, outputs, seconds = together(commands, environment(home, overrides))
    repo = open_home(home, overrides)
    datasets = {dataset: dataset_rows(repo, dataset) for dataset in expected}
    lost = sum(max(0, n - datasets[d]["distinct"]) for d, n in expected.items())
    duplicated = sum(r["rows"] - r["distinct"] + r["feature_rows"] - r["feature_distinct"]
                     for r in datasets.values())
    return {
        "scenario": name,
        "processes": len(commands),
        "exit_codes": codes,
        "seconds": round(seconds, 2),
        "expected_rows": expected,
        "datasets": datasets,
        "lost": lost,
        "duplicated": duplicated,
        "fsck_clean": check_repository(repo).clean,
        "outputs": [o.strip().splitlines()[-3:] for o in outputs],
    }


def worker_of(client: httpx.Client) -> int:
    """The pid of the worker serving ``client``'s connection."""
    return int(client.get("/health").json()["pid"])


def worker_clients(url: str, token: str, wanted: int, workers: int) -> list[httpx.Client]:
    """``wanted`` clients, each holding one connection, spread evenly over the workers.

    Every worker accepts from the one listening socket, so which worker a connection
    lands on is up to the kernel; this opens connections (``GET /health`` names the
    worker) until each worker holds its share, or gives up after ``10 * wanted`` and
    keeps whatever it found.
    """
    share = math.ceil(wanted / workers)
    kept: list[httpx.Client] = []
    spare: list[httpx.Client] = []
    per_worker: Counter[int] = Counter()
    for _ in range(10 * wanted):
        if len(kept) == wanted:
            break
        client = httpx.Client(base_url=url, timeout=120,
                              headers={"Authorization": f"Bearer {token}"})
        pid = worker_of(client)
        if per_worker[pid] < share:
            per_worker[pid] += 1
            kept.append(client)
        else:
            spare.append(client)
    fill = spare[: wanted - len(kept)]
    for client in spare[len(fill):]:
        client.close()
    return kept + fill


def feedback_storm(
    home: Path, overrides: list[str], labels: Sequence[str], posts: int = 20,
    workers: int = 2, per_post: int = 3,
) -> dict[str, Any]:
    """``posts`` POST /feedback at once on ``samplehub serve --workers N``; what was stored.

    The server runs with an API token over ``home``, which must answer label queries and
    have no ``feedback`` table yet, so the first posts also race to create it. Each
    ``labels`` entry is queried once for its query id and hits; the posts cycle over
    those queries, each deciding ``per_post`` samples no other post of its query decides
    (that query's hits first), one in three rejected, each post by its own reviewer. The
    posts wait at a barrier, each on its own connection, the connections spread evenly
    over the workers. Afterwards the ``feedback`` table must hold exactly the posted
    decisions, and every worker's next query of each label must leave out the samples
    rejected for it (:class:`~samplehub.export.feedback.Rejections`).

    Returns:
        The row: answers by status, stored rows against posted ones (``lost``,
        ``duplicated``, ``unexpected``), the workers that answered posts, the rejected
        samples that were hits before and that any worker still served after, whether
        the repository check is clean, and the storm's wall time.
    """
    repo = open_home(home, overrides)
    table_created = repo.catalog.table("feedback") is None
    ids = repo.catalog.read("samples", columns=["sample_id"]).column("sample_id").to_pylist()
    if len(ids) < math.ceil(posts / len(labels)) * per_post:
        raise ValueError(f"{posts} posts of {per_post} decisions over {len(labels)} queries "
                         f"need more samples than the {len(ids)} catalogued in {home}")
    token = secrets.token_urlsafe(16)
    env = environment(home, overrides) | {"SAMPLEHUB_API_TOKEN": token}
    with samplehub_server(overrides, workers, home.parent / f"{home.name}-serve.log",
                          env) as server:
        clients = worker_clients(server.url, token, posts, workers)
        hits_before: dict[str, list[int]] = {}
        for label in labels:
            answer = clients[0].post("/query", json={"labels": [label], "k": 50})
            answer.raise_for_status()
            body = answer.json()
            hits_before[body["spec_id"]] = [h["sample_id"] for h in body["hits"]]
        specs = list(hits_before)
        pools = {spec: iter(dict.fromkeys([*hits, *ids])) for spec, hits in hits_before.items()}
        bodies = []
        for i in range(posts):
            spec = specs[i % len(specs)]
            chosen = [next(pools[spec]) for _ in range(per_post)]
            bodies.append({"spec_id": spec, "who": f"reviewer-{i}", "decisions": [
                {"sample_id": s, "decision": "reject" if (i + j) % 3 == 0 else "accept"}
                for j, s in enumerate(chosen)]})
        answers: list[tuple[int, int, str]] = [(0, 0, "")] * posts
        barrier = threading.Barrier(posts + 1)

        def post(i: int) -> None:
            barrier.wait()
            try:
                response = clients[i].post("/feedback", json=bodies[i])
                # the worker of the connection that carried the post (httpx reopens a
                # connection the server closed, so it is asked after, not before)
                answers[i] = (response.status_code, worker_of(clients[i]), response.text[:300])
            except httpx.HTTPError as exc:  # no answer: counted as status 0
                answers[i] = (0, 0, f"{type(exc).__name__}: {exc}"[:300])

        threads = [threading.Thread(target=post, args=(i,)) for i in range(posts)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        rejected = {spec: set() for spec in specs}
        for body in bodies:
            rejected[body["spec_id"]] |= {d["sample_id"] for d in body["decisions"]
                                          if d["decision"] == "reject"}
        served_after = 0
        queried: set[int] = set()
        for client in {worker_of(c): c for c in clients}.values():  # one per worker
            for label, spec in zip(labels, specs, strict=True):
                body = client.post("/query", json={"labels": [label], "k": 50}).json()
                if body["spec_id"] != spec:
                    raise RuntimeError(f"query id of {label!r} changed: {body['spec_id']}")
                served_after += len({h["sample_id"] for h in body["hits"]} & rejected[spec])
            queried.add(worker_of(client))
        for client in clients:
            client.close()
    stored = repo.catalog.read("feedback", columns=["spec_id", "sample_id", "decision", "who"])
    got = list(zip(*(stored.column(c).to_pylist()
                     for c in ("spec_id", "sample_id", "decision", "who")), strict=True))
    posted = {(b["spec_id"], d["sample_id"], d["decision"], b["who"])
              for b in bodies for d in b["decisions"]}
    by_worker = Counter(pid for _, pid, _ in answers if pid)
    return {
        "scenario": "feedback_posts",
        "processes": 1,
        "workers": workers,
        "exit_codes": [server.process.returncode],
        "posts": posts,
        "answered": dict(Counter(str(status) for status, _, _ in answers)),
        "failed": [text for status, _, text in answers if not 200 <= status < 300][:5],
        "seconds": round(seconds, 2),
        "table_created": table_created,
        "rows_posted": len(posted),
        "rows": len(got),
        "lost": len(posted - set(got)),
        "duplicated": len(got) - len(set(got)),
        "unexpected": len(set(got) - posted),
        "workers_answering": len(by_worker),
        "posts_by_worker": sorted(by_worker.values()),
        "rejected": sum(len(r) for r in rejected.values()),
        "rejected_hits_before": sum(len(rejected[s] & set(h)) for s, h in hits_before.items()),
        "workers_queried": len(queried),
        "rejected_served_after": served_after,
        "fsck_clean": check_repository(repo).clean,
    }


def run_scenarios(first: Path, second: Path, work: Path, overrides: list[str]) -> list[dict]:
    """The five scenarios over two folder-tree datasets (``first`` gets features, an index)."""
    n_first, n_second = files_under(first), files_under(second)
    rows = []
    home = work / "two-datasets"
    rows.append(scenario("two_datasets", home,
                         [ingest(first, "first", overrides), ingest(second, "second", overrides)],
                         overrides, {"first": n_first, "second": n_second}))
    home = work / "same-dataset"
    rows.append(scenario("same_dataset", home,
                         [ingest(first, "first", overrides), ingest(first, "first", overrides)],
                         overrides, {"first": n_first}))
    features = python_stage("features", "from samplehub.feature_store import "
                                        "compute_features; compute_features(repo, 'first')")
    row = scenario("features_twice", home, [features, features], overrides, {"first": n_first})
    row["feature_rows_expected"] = n_first
    row["lost"] += n_first - row["datasets"]["first"]["feature_distinct"]
    rows.append(row)
    index = python_stage("index", "from samplehub.index.lifecycle import update_ivfpq_index; "
                                  "update_ivfpq_index(repo)")
    row = scenario("ingest_during_index", home, [index, ingest(second, "second", overrides)],
                   overrides, {"first": n_first, "second": n_second})
    indexed = index_snapshot(open_home(home, overrides))
    row["indexed"] = len(indexed)
    row["lost"] += abs(n_first - len(indexed))  # the index holds every feature stored before it
    rows.append(row)
    repo = open_home(home, overrides)
    found = catalog_label_trees(repo.catalog, ["first", "second"])  # for the storm's queries
    commit_label_trees(repo, found.trees, catalog_multilabel_samples(repo.catalog, found.trees))
    rows.append(feedback_storm(home, overrides, STORM_LABELS))
    return rows
