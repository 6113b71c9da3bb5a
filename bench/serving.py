"""The HTTP API under closed-loop load, and index swaps while it serves.

Claim (main paper, section 4.3.1: the system serves 140 parallel requests): ``samplehub
serve`` on 2 cores answers >= 300 full queries/s at 32 closed-loop clients with p99 <= 200
ms, and 140 clients with 0 errors; publishing a new index version under 32-client load
causes 0 errors and no p99 above 2x the steady state.

Data ("real_views"): the real-view corpus of ``bench/views.py`` (one EfficientNet-Lite0
feature per random view of a real EuroSAT, UC Merced or BigEarthNet image; 1M views by
default), catalogued as one sample per view with its image's real labels under the
datasets ``eurosat_10``, ``uc_merced_21`` and ``bigearthnet_s2``. The label graph is the
real one of ``bench/query.py`` (Algorithm 1 merges plus UC Merced co-occurrence). The JPEG
chips carry no coordinates or dates, so each source image gets a seeded synthetic
footprint (EuroSAT and BigEarthNet in Europe, UC Merced in the US) and acquisition date
(2016-2023) that its views share: the filters cost what real ones do, their selectivity is
the synthetic one recorded in each row. The home is written through the product's own
code: ``Catalog.append`` of the samples and features tables, the label-graph store,
``update_ivfpq_index`` (the shipped IVF-PQ shape) and ``compute_prototypes``; it is cached
in ``bench/.cache/serving_home/<n>``.

Load: ``samplehub serve --workers 2`` on 127.0.0.1 (a subprocess, stopped by its process
group) and locust headless (``bench/serving_users.py``) with 1, 8, 32 and 140 closed-loop
users, ``--seconds`` each. Mix: 45 % label queries without filters, 15 % each with a bbox,
a time range and both, 10 % query-by-image by ``sample_id``; each label query names one of
the ten common labels (``COMMON_LABELS`` of ``bench/query.py``), pages exact matches to 100
and asks for up to 100 supplementary samples. Query-by-image with an uploaded file costs an
encode (~50 img/s on this CPU), so uploads run in a row of their own (``mix: uploads``)
rather than in the query mix, where they would set the throughput. Before the rows, each
label is queried on every worker (the per-label memos of a serving context); no result is
cached anywhere.

Swap row: 32 users; before it, a new dataset (one view each of the 200 held-out query
images) is appended to the samples and features tables and the workers pick up that
catalog; the new index version (the loaded index plus those 200 vectors, what
``update_ivfpq_index`` computes) is prepared outside the timed window, and published
mid-run by ``save_index`` (a new version folder plus one link swap). Each worker's watcher
notices it within a second and swaps in a context with the new index (the snapshot and
label graph are reused). Latencies are split into before the publication (after the
ramp), during it (from the publication to the last worker's swap, as the workers report
it on ``/health``), and after.

Cold-start rows (one client, no other load, label queries): ``cold_start``, each label's
first query on the just-started server, before anything warmed it; ``cold_after_swap``,
each label's first query after one more index publication without load, beside the same
labels' warm queries just before it.

The load generator shares the 2 cores with the server: every row records its CPU time and
the server's (all workers), the cores each may run on, and ``os.getloadavg()`` after the
row. qps, p50, p99 and errors are computed from every request locust made (its request
event), errors being anything but HTTP 200 (including connection failures), over the
steady part of the run: from ``RAMP_S`` seconds after the first request (all users start
at once, and their first burst queues) to the end of the run time; errors outside it (the
ramp, requests still in flight when the users stop) are counted apart
(``errors_outside_window``).

What profiling showed (``--profile``: ``py-spy record`` of one worker in a 32-client run;
65,536 views, 2 workers, the machine shared with the corpus job, so CPU shares, not wall
times, are the finding). Of a worker's on-CPU samples, faiss was 36 % (the exact scan of
the fp16 re-rank store that the planner picks when a filter leaves < 20,000 candidates,
22 %; IVF-PQ with re-rank, 14 %), reading the feedback table for the rejected samples of
each query 9.5 % (4.3 ms a query; now read once per table version,
``samplehub.export.feedback.Rejections``), the bbox filter 8 %, building and serializing
the response 5.5 %; the rest is FastAPI, the exact-match hits and the filters. Per query
in one thread (CPU): unfiltered 25 ms (12 prototype vectors of 3 associated labels, each
an IVF-PQ search of k=100 with 800 candidates re-ranked), bbox 57 ms and time 90 ms
(exact scans of 6,000 and 16,500 candidates x 12 vectors at ~0.9 GMAC/s on fp16), both
20 ms, by ``sample_id`` 7 ms. So CPU per request is set by the shipped search settings
(``conf/retrieval``), and >= 300 full queries/s on 2 cores needs <= ~6 ms of server CPU
per request. Since that profile the exact plan scores the allowed vectors by blocked
matrix products over the fp16 store viewed in place (``IvfpqSearch.scan``) instead of
faiss' per-vector fp16 scan; ``serving.json`` was measured with it, at about 60 ms of
server CPU per request in the mix at 1M.

A later profile found much of that CPU outside the search settings (100,000 views,
``samplehub serve`` with 1 worker answering one request at a time, server CPU per request,
the machine shared with another job, load 2-3; in process through ``TestClient``, cProfile
and py-spy for the shares). ``omp_set_num_threads(1)`` had been set in each worker's main
thread only, but OpenMP's thread count belongs to the calling thread: every request thread
ran its faiss searches with OpenMP's default team, its second thread spinning beside the
first. Label query 23.3 ms, label+time 22.2 ms (both IVF-PQ), label+bbox 16.8 ms (exact
scan), both filters 7.7 ms, by ``sample_id`` 2.8 ms; in process, one label query cost 39
ms of CPU in a request thread against 8 ms on a thread set to one OpenMP thread. With the
setting made in every request thread (``samplehub.api.serving.one_omp_thread``), label
12.2 ms and label+time 12.4 ms; the exact scan's fp16 -> float32 widening, over half of
it, moved from numpy's element-by-element cast to torch's vectorised one (label+bbox -25
to -30 %); two dependencies that ran in the thread pool before every route now run on the
event loop (-0.2 ms). What a label request's ~12 ms is now: the batched IVF-PQ search of
its 12 prototypes with re-rank ~6 ms (IVF-PQ k=800: 4.5 ms, the re-rank of 12 x 800 fp16
vectors: 1.9 ms), the query's Python (exact hits, best matches, catalog fields, plan)
~1.5-2 ms, building the 200 hits of the response 0.8 ms, validating and serializing it 0.3
ms, the HTTP stack ~1.2 ms. The per-request suspects were small: the champion land-cover
model lookup 0.06 ms, the rejections 0.05 ms, the repository-change check 0 (the
background watcher does it), the index choice 0.05 ms, the plan's JSON round trip 0.07 ms.
The search part hardly grows with the catalog (``max_codes`` caps the codes a probe
scans), so at 1M it should stay at ~6 ms a label query or more (not measured here), and <=
~6 ms of server CPU per request is out of reach with the shipped settings
(``conf/retrieval``: 12 prototypes, refine 8x). In ``bench/serving.py`` at 100,000 views
(20 s rows), server CPU per request in the 1-client mix went from 13.7-16.6 to 10.4-11.4
ms and 1-client qps from 50-91 to 79-91; the 32-client rows, at load 5-10 from another
job, varied by +-20 % between runs of one version and allow no comparison.

Micro-batching concurrent requests into one faiss call was measured, not shipped: 120
distinct prototype vectors in one call cost 145 ms against 158 ms in ten calls of 12 (8 %
less), and a batch needs one search-parameter object, i.e. one selector, for all its
queries; each request's selector is its own (its filter, minus its label's exact
matches), so only requests for the same label without filters could share a call, and
those search the same 12 prototypes: batching them would be computing one request's
answer for the others, which is result sharing, not batching. The GIL: faiss releases it
for each search (SWIG), and each worker runs faiss single-threaded
(``omp_set_num_threads(1)``) so OpenMP teams do not oversubscribe the two cores; the
workers are processes, so Python work of two requests runs in parallel.

Writes ``bench/results/serving.json``. Run: ``python bench/serving.py [--n 1000000]
[--seconds 60] [--clients 1 8 32 140]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from common import REPO, machine, write_json

CACHE = REPO / "bench" / ".cache"
HOMES = CACHE / "serving_home"
VENV_BIN = Path(sys.executable).parent
DATASET_KEY = {"eurosat": "eurosat_10", "ucmerced": "uc_merced_21",
               "bigearthnet_s2": "bigearthnet_s2"}
NEW_DATASET = "heldout_views"
# Where each source dataset's synthetic footprints fall (lon/lat box) and their side (deg).
REGION = {"eurosat": ((-10.0, 36.0, 30.0, 60.0), 0.006),
          "bigearthnet_s2": ((-9.0, 37.0, 28.0, 68.0), 0.011),
          "ucmerced": ((-122.0, 26.0, -72.0, 48.0), 0.001)}
YEARS = (2016, 2024)  # synthetic acquisition dates fall in [2016-01-01, 2024-01-01)
SEED = 0
CHUNK = 65_536
N_FILTERS = 40
WORKERS = 2
THREADS = 40
RAMP_S = 5.0


def config_overrides(home: Path) -> list[str]:
    """The Hydra overrides of the bench home (embedded label graph)."""
    return ["graph=embedded", f"home={home}"]


def open_repo(home: Path) -> Any:
    """The bench home's repository."""
    from samplehub.config import load_config
    from samplehub.repository import Repository

    return Repository(load_config(config_overrides(home)))


def synthetic_places(images: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per source image: footprint (centre lon, lat, side; (m, 3)), date and source dataset."""
    rng = np.random.default_rng(SEED)
    lon, lat, side = (np.zeros(len(images)) for _ in range(3))
    kinds = np.array([i.dataset for i in images])
    for kind, ((x0, y0, x1, y1), size) in REGION.items():
        rows = kinds == kind
        lon[rows] = rng.uniform(x0, x1, rows.sum())
        lat[rows] = rng.uniform(y0, y1, rows.sum())
        side[rows] = size
    start = np.datetime64(f"{YEARS[0]}-01-01", "s").astype(np.int64)
    end = np.datetime64(f"{YEARS[1]}-01-01", "s").astype(np.int64)
    when = rng.integers(start, end, len(images)).astype("datetime64[s]")
    return np.stack([lon, lat, side], axis=1), when, kinds


def samples_rows(first: int, source: np.ndarray, images: list[Any], dataset: str | None = None
                 ) -> pa.Table:
    """Samples-table rows of views ``first .. first + len(source)``, one sample per view.

    Args:
        first: sample id of the first view (sample id = view number).
        source: each view's source image.
        images: the image table.
        dataset: every row's dataset; None: the source image's (``DATASET_KEY``).
    """
    import shapely

    from samplehub.catalog import schema
    from samplehub.hilbert import hilbert_key

    places, when, _ = synthetic_places(images)
    n = len(source)
    lon, lat, side = places[source, 0], places[source, 1], places[source, 2]
    half = side / 2
    box = shapely.box(lon - half, lat - half, lon + half, lat + half)
    ids = np.arange(first, first + n, dtype=np.int64)
    srcs = [images[s] for s in source.tolist()]
    relpath = [f"{i.relpath}#view{v}" for i, v in zip(srcs, ids.tolist(), strict=True)]
    labels = [list(i.labels) for i in srcs]
    columns: dict[str, Any] = {
        "sample_id": ids,
        "dataset": [dataset or DATASET_KEY[i.dataset] for i in srcs],
        "relpath": relpath,
        "uri": [f"views://{p}" for p in relpath],
        "labels": labels,
        "label_path": labels,
        "unified_labels": [[] for _ in srcs],
        "width": np.full(n, 64, np.int32),
        "height": np.full(n, 64, np.int32),
        "bands": [["red", "green", "blue"]] * n,
        "dtype": ["uint8"] * n,
        "sensor": ["aerial" if i.dataset == "ucmerced" else "sentinel2" for i in srcs],
        "crs": ["EPSG:4326"] * n,
        "georeferenced": np.ones(n, bool),
        "minx": lon - half, "miny": lat - half, "maxx": lon + half, "maxy": lat + half,
        "footprint": shapely.to_wkb(box),
        "hilbert": hilbert_key(lon, lat),
        "time": pa.array(when[source].astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "ingested_at": pa.array(np.full(n, np.datetime64(datetime.now(UTC).replace(tzinfo=None),
                                                         "us")), pa.timestamp("us", tz="UTC")),
    }
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type)
              for f in schema.SAMPLES]
    return pa.Table.from_arrays([pa.array(a, f.type) if not isinstance(a, pa.Array) else a
                                 for a, f in zip(arrays, schema.SAMPLES, strict=True)],
                                schema=schema.SAMPLES)


def append_views(repo: Any, first: int, xb: np.ndarray, source: np.ndarray, images: list[Any],
                 dataset: str | None = None) -> None:
    """Append views' samples and features rows (one Delta commit per table and dataset)."""
    from samplehub.feature_store import feature_table
    from samplehub.models.feature_model import model_version

    version = model_version(repo.config)
    table = samples_rows(first, source, images, dataset)
    repo.catalog.append("samples", table)
    names = np.asarray(table.column("dataset").to_pylist())
    ids = table.column("sample_id").to_numpy()
    for name in np.unique(names):
        keep = names == name
        repo.catalog.append("features", feature_table(ids[keep], str(name), version, xb[keep]))


def build_home(n: int) -> Path:
    """The bench home of ``n`` views (module docstring), built once and cached."""
    import views
    from query import label_graph

    from samplehub.index.lifecycle import update_ivfpq_index
    from samplehub.labels.store import EmbeddedLabelGraphStore
    from samplehub.retrieval.prototypes import compute_prototypes

    home = HOMES / str(n)
    done = home / "built.json"
    if done.exists():
        return home
    if home.exists():
        raise FileExistsError(f"{home} holds a partial build; remove it and run again")
    corpus = views.load(n)
    repo = open_repo(home)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for first in range(0, n, CHUNK):
        rows = slice(first, min(first + CHUNK, n))
        append_views(repo, first, corpus.xb[rows], corpus.source[rows], corpus.images)
        print(f"catalogued {rows.stop:,} / {n:,} views", flush=True)
    timings["catalog_s"] = time.perf_counter() - start
    EmbeddedLabelGraphStore(repo.config.home_path).commit(
        label_graph(), "bench/serving.py: the real label graph of bench/query.py")
    start = time.perf_counter()
    update = update_ivfpq_index(repo)
    timings["index_s"] = time.perf_counter() - start
    start = time.perf_counter()
    compute_prototypes(repo)
    timings["prototypes_s"] = time.perf_counter() - start
    done.write_text(json.dumps({"n": n, "nlist": update.nlist, "ntotal": update.ntotal,
                                **{k: round(v, 1) for k, v in timings.items()}}, indent=2))
    print(f"built {home}: {done.read_text()}", flush=True)
    return home


def request_plan(n: int, folder: Path) -> Path:
    """The locust users' plan: labels, filter windows, sample ids and upload files."""
    import views
    from query import COMMON_LABELS

    rng = np.random.default_rng(SEED + 1)
    (x0, y0, x1, y1), _ = REGION["eurosat"]
    filters = []
    for _ in range(N_FILTERS):
        lon, lat = rng.uniform(x0, x1 - 12), rng.uniform(y0, y1 - 8)  # 12 x 8 degrees
        year = int(rng.integers(YEARS[0], YEARS[1] - 1))  # two years
        filters.append({"bbox": [round(lon, 3), round(lat, 3), round(lon + 12, 3),
                                 round(lat + 8, 3)],
                        "time": [f"{year}-01-01", f"{year + 2}-01-01"]})
    uploads = upload_files(views.load(0), folder)
    plan = {"labels": list(COMMON_LABELS), "filters": filters,
            "sample_ids": rng.choice(n, 1000, replace=False).tolist(),
            "uploads": [str(p) for p in uploads]}
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def upload_files(corpus: Any, folder: Path, count: int = 20) -> list[Path]:
    """PNG files of ``count`` held-out query images (not in the index), for the upload row."""
    from common import SHARED_DATA
    from PIL import Image as PILImage

    out = []
    for i, s in enumerate(corpus.query_source[:count].tolist()):
        image = corpus.images[s]
        path = SHARED_DATA / image.relpath
        if path.is_dir():  # a BigEarthNet patch folder: no RGB file to upload
            continue
        target = folder / f"upload_{i:03d}.png"
        with PILImage.open(path) as img:
            img.convert("RGB").save(target)
        out.append(target)
    return out


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``samplehub serve``."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    threads: int

    def pids(self) -> list[int]:
        """The supervisor and its worker processes."""
        import psutil

        parent = psutil.Process(self.process.pid)
        return [self.process.pid] + [c.pid for c in parent.children(recursive=True)]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the supervisor and its workers."""
        import psutil

        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total

    def affinity(self) -> list[int]:
        """Cores the server may run on."""
        return sorted(os.sched_getaffinity(self.process.pid))


@contextlib.contextmanager
def serve(home: Path, workers: int, threads: int, folder: Path, timeout: float = 900.0
          ) -> Iterator[Server]:
    """``samplehub serve`` on a free loopback port until every worker loaded its context."""
    port = free_port()
    log = folder / "server.log"
    command = [str(VENV_BIN / "samplehub"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", str(threads)]
    for override in config_overrides(home):
        command += ["--set", override]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=REPO)
    server = Server(process, f"http://127.0.0.1:{port}", log, threads)
    try:
        deadline = time.monotonic() + timeout
        while log.read_text().count("Application startup complete") < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"samplehub serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON, return the JSON answer (raises on HTTP errors)."""
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def health(url: str) -> dict[str, Any]:
    """GET /health of whichever worker answers."""
    with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def warm_up(server: Server, plan: dict[str, Any], rounds: int = 6) -> dict[str, Any]:
    """Query every label (plain and with each filter kind) ``rounds`` times from 4 threads.

    Connections land on the workers at random, so each label reaches every worker with
    high probability. Returns the candidates and search methods the filters led to.
    """
    from concurrent.futures import ThreadPoolExecutor

    bodies = []
    for label in plan["labels"]:
        bodies.append({"labels": [label], "k": 100, "exact_limit": 100})
        for window in plan["filters"][:rounds]:
            bodies.append({"labels": [label], "k": 100, "exact_limit": 100,
                           "constraints": window})
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: post_json(f"{server.url}/query", b), bodies * rounds))
    filtered = [a["plan"] for a, b in zip(answers, bodies * rounds, strict=True)
                if "constraints" in b]
    methods = [p["search"]["method"] for a in filtered for p in a["labels"].values()
               if p.get("search")]
    return {"bbox_time_candidates_median": int(np.median([a["candidates"] for a in filtered])),
            "bbox_time_methods": {m: methods.count(m) for m in sorted(set(methods))}}


@dataclass
class LocustRun:
    """What one locust run left: every request and the generator's CPU time."""

    requests: np.ndarray  # (m, 4): end time (s), name code, latency (ms), failed
    names: list[str]
    run_time: float
    cpu_s: float
    affinity: list[int]

    @property
    def window(self) -> tuple[float, float]:
        """The steady part: from ``RAMP_S`` after the first request left to the run's end.

        Users stopped at the end may leave requests in flight; those end after it.
        """
        first = float((self.requests[:, 0] - self.requests[:, 2] / 1000).min())
        return first + RAMP_S, first + self.run_time

    def between(self, start: float, end: float) -> np.ndarray:
        """The requests that ended in ``[start, end)``."""
        t = self.requests[:, 0]
        return self.requests[(t >= start) & (t < end)]


def run_locust(server: Server, plan: Path, users: int, seconds: float, mix: str,
               folder: Path, during: Any = None) -> LocustRun:
    """Run locust headless with ``users`` closed-loop users; ``during()`` runs meanwhile."""
    log = folder / f"requests_{mix}_{users}.json"
    command = [str(VENV_BIN / "locust"), "-f", str(REPO / "bench" / "serving_users.py"),
               "--headless", "--users", str(users), "--spawn-rate", str(users),
               "--run-time", f"{round(seconds)}s", "--host", server.url, "--only-summary",
               "--stop-timeout", "30", "--loglevel", "WARNING", "--plan", str(plan),
               "--requests-log", str(log), "--mix", mix]
    with (folder / f"locust_{mix}_{users}.log").open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    affinity = sorted(os.sched_getaffinity(process.pid))
    helper = None
    if during is not None:
        helper = threading.Thread(target=during, daemon=True)
        helper.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if helper is not None:
        helper.join()
    if not log.exists():
        raise RuntimeError(f"locust wrote no request log (exit {process.returncode}): "
                           f"{(folder / f'locust_{mix}_{users}.log').read_text()[-3000:]}")
    raw = json.loads(log.read_text())
    names = sorted({r[1] for r in raw})
    requests = np.array([(r[0], names.index(r[1]), r[2], r[3]) for r in raw], dtype=np.float64)
    return LocustRun(requests.reshape(-1, 4), names, round(seconds),
                     usage.ru_utime + usage.ru_stime, affinity)


def latency_stats(requests: np.ndarray, seconds: float) -> dict[str, Any]:
    """qps, p50, p99 and errors of ``requests`` rows over ``seconds``."""
    if not len(requests):
        return {"requests": 0, "qps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0}
    latency = requests[:, 2]
    return {
        "requests": len(requests),
        "qps": round(len(requests) / seconds, 1),
        "p50_ms": round(float(np.percentile(latency, 50)), 1),
        "p99_ms": round(float(np.percentile(latency, 99)), 1),
        "errors": int(requests[:, 3].sum()),
    }


def row(run: LocustRun, server: Server, users: int, mix: str, cpu_before: float,
        n: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result row of a locust run: statistics of its steady part (:attr:`LocustRun.window`)."""
    start, end = run.window
    steady = run.between(start, end)
    seconds = end - start
    stats = latency_stats(steady, seconds)
    per_kind = {name: latency_stats(steady[steady[:, 1] == i], seconds)
                for i, name in enumerate(run.names)}
    full = steady[np.isin(steady[:, 1],
                          [i for i, m in enumerate(run.names) if m.startswith("label")])]
    server_cpu = server.cpu_s() - cpu_before
    out = {
        "data": "real_views", "n": n, "clients": users, "mix": mix, "workers": WORKERS,
        "request_threads": server.threads,
        "seconds": round(seconds, 1), "ramp_s_left_out": RAMP_S, **stats,
        "errors_outside_window": int(run.requests[:, 3].sum()) - stats["errors"],
        "full_qps": round(len(full) / seconds, 1) if mix == "queries" else None,
        "full_p99_ms": latency_stats(full, seconds)["p99_ms"] if mix == "queries" else None,
        "by_kind": per_kind,
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(len(run.requests), 1), 2),
        "server_cores": server.affinity(),
        "load_generator": {"tool": "locust (FastHttpUser, one process)", "host": "127.0.0.1",
                           "cpu_s": round(run.cpu_s, 1), "cores": run.affinity,
                           "shares_cores_with_server": bool(set(run.affinity)
                                                            & set(server.affinity()))},
        "load_avg": [round(v, 2) for v in os.getloadavg()],
        **(extra or {}),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "by_kind"}), flush=True)
    return out


def prepare_swap(home: Path, n: int) -> tuple[Any, Path, int]:
    """Append the new dataset (held-out views) and build, not publish, the grown index.

    Returns:
        The index and its path, to publish with ``save_index``, and the vectors added (0
        when an earlier run already published them).
    """
    import views

    from samplehub.index.ivfpq import add_to_index
    from samplehub.index.lifecycle import index_path, load_ivfpq_index
    from samplehub.models.feature_model import model_version

    corpus = views.load(0)
    repo = open_repo(home)
    first = n + 1_000_000  # above every view id
    if not len(repo.catalog.read("samples", dataset=NEW_DATASET, columns=["sample_id"])):
        append_views(repo, first, corpus.xq, corpus.query_source, corpus.images, NEW_DATASET)
    index = load_ivfpq_index(repo)  # read into memory (not mapped): it grows
    added = add_to_index(index, corpus.xq, np.arange(first, first + len(corpus.xq)))
    return index, index_path(repo.config, model_version(repo.config)), added


def swap_row(server: Server, plan: Path, users: int, seconds: float, folder: Path,
             home: Path, n: int) -> dict[str, Any]:
    """The swap-under-load row: publish a new index version a third into the run."""
    from samplehub.index.files import published_folder
    from samplehub.index.ivfpq import save_index

    index, path, added = prepare_swap(home, n)
    # the workers' watchers pick up the new catalog (appended above) before the timed run
    wait_for(server, lambda h: h["context"]["samples"] == n + 200 and not h["reloading"])
    before = health(server.url)["context"]["index_version"]
    events: dict[str, Any] = {}

    def publish() -> None:
        time.sleep(seconds / 3)
        events["publish_start"] = time.time()
        save_index(index, path)
        events["publish_end"] = time.time()
        events["version"] = published_folder(path).name
        swapped: dict[int, float] = {}

        def on_new_version(answer: dict[str, Any]) -> bool:
            if answer["context"]["index_version"] != events["version"]:
                return False
            swapped[answer["pid"]] = answer["swapped_at"]
            return True

        wait_for(server, on_new_version, timeout=seconds)
        events["all_swapped"] = max(swapped.values())  # the workers' own swap times

    cpu = server.cpu_s()
    run = run_locust(server, plan, users, seconds, "queries", folder, during=publish)
    if "all_swapped" not in events:
        raise RuntimeError(f"the workers did not pick up the new index version: {events}")
    start, end = events["publish_start"], events["all_swapped"]
    first, last = run.window
    windows = {
        "before": latency_stats(run.between(first, start), start - first),
        "during": latency_stats(run.between(start, end), max(end - start, 1e-3)),
        "after": latency_stats(run.between(end, last), last - end),
    }
    steady = windows["before"]["p99_ms"]
    during = windows["during"]["p99_ms"]
    return row(run, server, users, "queries", cpu, n, {
        "swap": {
            "from_version": before, "to_version": events["version"],
            "vectors_added": added,
            "publish_s": round(events["publish_end"] - start, 2),
            "pickup_s": round(end - start, 2),  # publication start to the last worker's swap
            "windows": windows,
            "during_p99_over_before": round(during / steady, 2) if steady and during else None,
        },
    })


def first_queries(server: Server, labels: list[str], repeats: int = 0) -> dict[str, Any]:
    """One client, no other load: each label's first label query, then ``repeats`` more.

    Returns the first queries' latencies (p50, max) and, with ``repeats``, the median of
    the repeats (the same labels warm) beside them.
    """
    def timed(label: str) -> float:
        start = time.perf_counter()
        post_json(f"{server.url}/query", {"labels": [label], "k": 100, "exact_limit": 100})
        return (time.perf_counter() - start) * 1000

    first = np.array([timed(label) for label in labels])
    out: dict[str, Any] = {"labels": len(labels), "clients": 1,
                           "first_p50_ms": round(float(np.median(first)), 1),
                           "first_max_ms": round(float(first.max()), 1)}
    if repeats:
        warm = np.array([timed(label) for label in labels for _ in range(repeats)])
        out["warm_p50_ms"] = round(float(np.median(warm)), 1)
    return out


def cold_after_swap_row(server: Server, plan: dict[str, Any], home: Path, n: int
                        ) -> dict[str, Any]:
    """First query per label after an index swap, one client, no other load.

    Publishes the index once more (a new version folder and link swap, as
    :func:`swap_row`), waits until every worker serves it, then queries each label once:
    the background reload warmed the new context's per-label memos before the swap
    (:meth:`samplehub.retrieval.context.QueryContext.warm`), so these should cost what the
    warm queries measured just before cost.
    """
    from samplehub.index.files import published_folder
    from samplehub.index.ivfpq import save_index

    labels = list(plan["labels"])
    steady = first_queries(server, labels, repeats=3)
    index, path, _ = prepare_swap(home, n)
    save_index(index, path)
    version = published_folder(path).name
    wait_for(server, lambda h: h["context"]["index_version"] == version and not h["reloading"])
    after = first_queries(server, labels)
    return {"data": "real_views", "n": n, "mix": "cold_after_swap", "workers": WORKERS,
            "to_version": version, "before_swap_warm_p50_ms": steady["warm_p50_ms"],
            "after_swap": after,
            "first_over_warm": round(after["first_p50_ms"] / steady["warm_p50_ms"], 2),
            "load_avg": [round(v, 2) for v in os.getloadavg()]}


def wait_for(server: Server, done: Any, timeout: float = 600.0, polls: int = 8) -> int:
    """Poll /health until ``done(answer)`` held for ``polls`` answers in a row.

    Each poll opens a new connection, which lands on a worker at random; a run of
    answers that all hold, from every worker, says every worker is there. Returns the
    number of workers seen.
    """
    deadline = time.monotonic() + timeout
    streak, pids = 0, set()
    while time.monotonic() < deadline:
        answer = health(server.url)
        if answer["context"] is not None and done(answer):
            streak += 1
            pids.add(answer["pid"])
            if streak >= polls and len(pids) >= WORKERS:
                return len(pids)
        else:
            streak, pids = 0, set()
        time.sleep(0.05)
    raise TimeoutError(f"the workers did not reach the awaited state in {timeout} s")


def warm_uploads(server: Server, plan: dict[str, Any], rounds: int = 4) -> None:
    """Upload each plan image ``rounds`` times from 2 threads: every worker loads its encoder."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def upload(path: str) -> None:
        with httpx.Client(timeout=300) as client:  # a new connection: any worker
            response = client.post(f"{server.url}/query/image", data={"k": "100"},
                                   files={"file": ("view.png", Path(path).read_bytes())})
            response.raise_for_status()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(upload, plan["uploads"] * rounds))


def profile_worker(server: Server, plan: Path, seconds: float, folder: Path) -> Path:
    """``py-spy record`` of one worker during a 32-client run; its collapsed stacks (text)."""
    out = folder / "profile_32.txt"
    worker = health(server.url)["pid"]
    spy = subprocess.Popen([str(VENV_BIN / "py-spy"), "record", "--pid", str(worker),
                            "--duration", str(round(seconds)), "--output", str(out),
                            "--format", "raw", "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    run_locust(server, plan, 32, seconds, "queries", folder)
    spy.wait()
    return out


def main() -> None:
    """Build (or reuse) the home, serve it, run every row, write ``bench/results/serving.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="views in the repository")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 140])
    parser.add_argument("--upload-clients", type=int, default=8)
    parser.add_argument("--no-swap", action="store_true", help="skip the swap row")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record one worker in a 32-client run instead of measuring")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="request threads per server worker")
    parser.add_argument("--output", default="serving.json")
    parser.add_argument("--setup-only", action="store_true",
                        help="build the cached home and stop (run it while timings do not matter)")
    args = parser.parse_args()
    home = build_home(args.n)
    if args.setup_only:
        return
    folder = Path(tempfile.mkdtemp(prefix="serving-", dir=CACHE))
    plan = request_plan(args.n, folder)
    with serve(home, WORKERS, args.threads, folder) as server:
        # the first query of each label on a just-started server (whichever worker answers)
        cold = {"data": "real_views", "n": args.n, "mix": "cold_start", "workers": WORKERS,
                **first_queries(server, list(json.loads(plan.read_text())["labels"]))}
        print(json.dumps(cold), flush=True)
        warmed = warm_up(server, json.loads(plan.read_text()))
        print(f"warmed up: {warmed}", flush=True)
        if args.profile:
            print(f"profile: {profile_worker(server, plan, args.seconds, folder)}")
            return
        rows = [cold]
        for users in args.clients:
            cpu = server.cpu_s()
            run = run_locust(server, plan, users, args.seconds, "queries", folder)
            rows.append(row(run, server, users, "queries", cpu, args.n, {"filters": warmed}))
        if args.upload_clients:
            warm_uploads(server, json.loads(plan.read_text()))
            cpu = server.cpu_s()
            run = run_locust(server, plan, args.upload_clients, args.seconds, "uploads", folder)
            rows.append(row(run, server, args.upload_clients, "uploads", cpu, args.n))
        if not args.no_swap:
            rows.append(swap_row(server, plan, 32, args.seconds, folder, home, args.n))
            rows.append(cold_after_swap_row(server, json.loads(plan.read_text()), home, args.n))
    write_json(args.output, {"machine": machine(), "rows": rows,
                             "home": json.loads((home / "built.json").read_text())})


if __name__ == "__main__":
    main()
