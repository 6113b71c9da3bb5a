"""Reliability of the HTTP API: a long closed-loop soak, and fuzzing from its own schema.

Two rows for the reliability report (``bench/reliability.py`` imports :func:`soak_row`
and :func:`fuzz_row`). Goals from the issue: the soak ends with 0 errors, total server RSS
grown by at most 5 %, and a stable count of open file descriptors; the fuzz finds no 5xx
and leaves the server up. The rows report what was measured; nothing here is tuned to
meet the goals.

Soak (``soak_row``): the real-view serving home of ``bench/serving.py`` (``build_home(n)``:
``n`` real views catalogued with their images' real labels, the real label graph, the
shipped IVF-PQ index and prototypes; 100,000 views by default), served by ``samplehub
serve`` with serving.py's workers and request threads, warmed as serving.py warms it
(every label, plain and with each filter kind, on every worker), then ``users``
closed-loop locust clients for ``seconds`` with serving.py's query mix
(``bench/serving_users.py``: label queries with and without bbox/time filters,
query-by-image by ``sample_id``). Every ~10 s a sampler thread sums the RSS, PSS and
open file descriptors of the server's process tree (supervisor and workers, psutil).
``errors`` counts every request that was not an HTTP 200, connection failures included,
over the whole run; qps, p50 and p99 are those of the steady part (serving.py's window:
from ``RAMP_S`` after the first request to the end of the run time). ``rss_growth`` is
the last sample under load over the first sample taken at least ``RAMP_S`` after the load
started, minus 1 (``rss_growth_baseline`` names it); summed RSS counts the pages the
workers share (the mapped index, copy-on-write pages) once per worker, which PSS does not,
so both are reported. Worker pids are compared before and after: a restarted worker would
hide a leak behind a fresh process.

Fuzz (``fuzz_row``): a small real repository (the one of
``tests/samplehub/api/test_api_fuzz.py``, ``build_fuzz_repository`` of
``tests/samplehub/api/fuzz_cases.py``: 100 real images each of three UC Merced and two
EuroSAT classes, UC Merced's multi-label annotation of them, features, label graph and index
from the shipped jobs, and a labelling view of 40 more EuroSAT chips; cached in
``bench/.cache/fuzz_home`` and copied for each run, since generated writes change it) served
by ``samplehub serve`` with an API token, so the token check is on the path, and a
``watch_root`` for published labels. Schemathesis reads the live ``/openapi.json`` and
generates requests per operation, producers first, in rounds with a new seed each until at
least ``cases`` requests were sent. The cases are those of the in-process test
(``fuzz_cases.py``): a quarter of each operation's negative (schema-invalid) as generated;
in the positive ones each field naming something in the repository (sample ids, labels,
datasets, chips, segments, bbox, time and split settings, an upload, the ``spec_id`` and
``build_id`` of earlier answers) takes a real value in a Hypothesis choice weighted 3:1, so
that requests get past the 404s and 422s of unknown names into the routes' logic. Each
answer is counted by status and by outcome: ``2xx``, ``handler_4xx`` (refused by a route's
own logic: the SampleHub error body), ``validation_4xx`` (refused before any route code:
request validation, the token, an unparsable body), ``5xx``, ``no_response``;
``reached_handler_share`` is the share of the first two, ``operations_with_2xx`` how many
operations succeeded at least once. Every request is sent with the token, so writes reach
their handlers rather than stopping at 401; a negative case may leave it out (Schemathesis
tests the missing token too). A 5xx, or a request that got no answer, is a server error;
each is recorded with its method, path and a body excerpt, and the exception lines of the
server log are kept beside them. At the end ``GET /health`` says whether the server is still up.

Run: ``python bench/soak.py --section soak [--n 100000] [--users 32] [--seconds 600]``
or ``python bench/soak.py --section fuzz [--cases 1000]``; each prints its row as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, load_test_helper, machine, require_data
from serving import (
    CACHE,
    RAMP_S,
    THREADS,
    WORKERS,
    Server,
    build_home,
    health,
    latency_stats,
    open_repo,
    request_plan,
    run_locust,
    serve,
    warm_up,
)

SAMPLE_EVERY_S = 10.0
FUZZ_HOME = CACHE / "fuzz_home"
FUZZ_ROUNDS = 20  # seeds tried before giving up on reaching ``cases`` requests
REQUEST_TIMEOUT_S = 120.0


def tree_usage(server: Server) -> dict[str, float]:
    """Summed RSS and PSS (MiB) and open file descriptors of the server's process tree."""
    import psutil

    rss = pss = fds = 0
    for pid in server.pids():
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            memory = process.memory_full_info()  # reads smaps: PSS as well as RSS
            rss += memory.rss
            pss += memory.pss
            fds += process.num_fds()
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1), "fds": fds}


def soak_row(n: int = 100_000, users: int = 32, seconds: float = 600) -> dict[str, Any]:
    """Serve the real-view home of ``n`` views to ``users`` clients for ``seconds``.

    Returns:
        The soak row (module docstring): requests, errors over the whole run, steady-part
        qps and latency, and the server's RSS and open descriptors sampled every ~10 s.
    """
    home = build_home(n)
    folder = Path(tempfile.mkdtemp(prefix="soak-", dir=CACHE))
    plan = request_plan(n, folder)
    with serve(home, WORKERS, THREADS, folder) as server:
        warm_up(server, json.loads(plan.read_text()))
        start = tree_usage(server)
        pids_before = set(server.pids())
        series: list[dict[str, float]] = []

        def sample() -> None:
            # run_locust joins this thread once locust exits, so it stops by itself
            # at the end of the run time rather than waiting for a signal
            began = time.monotonic()
            while True:
                elapsed = time.monotonic() - began
                series.append({"t_s": round(elapsed, 1), **tree_usage(server)})
                if elapsed >= seconds:
                    return
                time.sleep(min(SAMPLE_EVERY_S, max(seconds - elapsed, 0.1)))

        cpu = server.cpu_s()
        run = run_locust(server, plan, users, seconds, "queries", folder, during=sample)
        server_cpu = server.cpu_s() - cpu
        after = tree_usage(server)
        pids_after = set(server.pids())
        alive = server.process.poll() is None
        locust_log = (folder / f"locust_queries_{users}.log").read_text()
    first, last = run.window
    stats = latency_stats(run.between(first, last), last - first)
    baseline = next(s for s in series if s["t_s"] >= RAMP_S)
    end = series[-1]
    mid = next(s for s in series if s["t_s"] >= seconds / 2)
    fds = [int(s["fds"]) for s in series]
    errors = int(run.requests[:, 3].sum())
    return {
        "section": "soak", "data": "real_views", "n": n, "users": users,
        "seconds": round(seconds), "workers": WORKERS, "request_threads": THREADS,
        "mix": "queries (bench/serving_users.py)",
        "requests": len(run.requests), "errors": errors,
        "errors_in_window": stats["errors"],
        "error_report": error_report(locust_log) if errors else [],
        "qps": stats["qps"], "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"],
        "latency_window": f"steady part: {RAMP_S:g} s after the first request to the run's end",
        "rss_mb_start": start["rss_mb"], "rss_mb_end": end["rss_mb"],
        "rss_growth": round(end["rss_mb"] / baseline["rss_mb"] - 1, 4),
        "rss_growth_baseline": f"first sample >= {RAMP_S:g} s into the load "
                               f"(t={baseline['t_s']} s, {baseline['rss_mb']} MiB); "
                               f"end: last sample under load (t={end['t_s']} s)",
        "rss_growth_second_half": round(end["rss_mb"] / mid["rss_mb"] - 1, 4),
        "pss_mb_start": start["pss_mb"], "pss_mb_end": end["pss_mb"],
        "pss_growth": round(end["pss_mb"] / baseline["pss_mb"] - 1, 4),
        "fds_start": start["fds"], "fds_end": end["fds"], "fds_max": max(fds),
        "after_load": after,
        "series": {key: [s[key] for s in series] for key in ("t_s", "rss_mb", "pss_mb", "fds")},
        "server_alive_after": alive,
        "worker_pids_changed": sorted(pids_before ^ pids_after),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(len(run.requests), 1), 2),
        "load_generator_cpu_s": round(run.cpu_s, 1),
        "code": code_state(),
        "machine": machine(),
    }


def code_state() -> dict[str, Any]:
    """The commit measured, and the product files (samplehub/) that differed from it."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain")
               .splitlines() if line[3:].startswith("samplehub/")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "uncommitted_product_changes": changed}


def error_report(locust_log: str, lines: int = 10) -> list[str]:
    """The rows of locust's failure table (occurrences and message), at most ``lines``."""
    table = locust_log.split("Error report")[-1] if "Error report" in locust_log else ""
    return [line.strip() for line in table.splitlines() if re.match(r"\s*\d+\s+\S", line)][:lines]


def fuzz_helpers() -> Any:
    """``tests/samplehub/api/fuzz_cases.py``, with the test helpers it imports loaded first."""
    load_test_helper("asset_jobs")
    sys.modules["labelling_fixture"] = load_test_helper("samplehub/labelling_fixture")
    return load_test_helper("samplehub/api/fuzz_cases")


def fuzz_home() -> Path:
    """The small real repository of the fuzz row, built once into ``FUZZ_HOME``.

    The one the API fuzz test serves (``build_fuzz_repository`` of
    ``tests/samplehub/api/fuzz_cases.py``): ``build_real_repository`` of
    ``tests/asset_jobs.py`` and the ``chips`` labelling view. A cache from before the view
    was added is rebuilt.
    """
    done = FUZZ_HOME / "built.json"
    if done.exists() and "view" in json.loads(done.read_text()):
        return FUZZ_HOME / "home"
    if done.exists():
        shutil.rmtree(FUZZ_HOME)
    if FUZZ_HOME.exists():
        raise FileExistsError(f"{FUZZ_HOME} holds a partial build; remove it and run again")
    data = require_data("ucmerced", "eurosat_rgb", "ucmerced_multilabel")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the shipped model is in the venv
    fuzz_cases = fuzz_helpers()
    asset_jobs = sys.modules["asset_jobs"]

    from assets.resources import SampleHubResource

    start = time.perf_counter()
    home = FUZZ_HOME / "home"
    resource = SampleHubResource(overrides=[*asset_jobs.REAL_OVERRIDES, f"home={home}"])
    fuzz_cases.build_fuzz_repository(resource, data, FUZZ_HOME / "images")
    done.write_text(json.dumps({"picks": {d: list(c) for d, (_, c) in
                                          asset_jobs.REAL_PICK.items()},
                                "per_class": asset_jobs.REAL_PER_CLASS,
                                "view": sys.modules["labelling_fixture"].VIEW,
                                "seconds": round(time.perf_counter() - start, 1)}))
    return home


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the server) for the block, then restore them."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fuzz_row(cases: int = 1000) -> dict[str, Any]:
    """Fuzz a live server over the small real repository with at least ``cases`` requests.

    Returns:
        The fuzz row (module docstring): requests by status class, outcome and operation,
        the share that reached a route's logic, each 5xx or unanswered request, and whether
        the server answered ``/health`` afterwards.
    """
    import urllib.request

    fuzz_cases = fuzz_helpers()
    source = fuzz_home()
    folder = Path(tempfile.mkdtemp(prefix="fuzz-", dir=CACHE))
    home = folder / "home"
    shutil.copytree(source, home, symlinks=True)
    values = fuzz_cases.RealValues.of(open_repo(home))
    real = {name: len(pool) for name, pool in vars(values).items()}
    token = secrets.token_urlsafe(16)
    started = time.perf_counter()
    tally = fuzz_cases.Tally()
    # publishing labels writes the new dataset under watch_root
    with environment(SAMPLEHUB_API_TOKEN=token,
                     SAMPLEHUB_OVERRIDES=f"watch_root={folder / 'watched'}"), \
            serve(home, WORKERS, THREADS, folder) as server:
        with urllib.request.urlopen(f"{server.url}/openapi.json", timeout=30) as answer:
            schema = fuzz_cases.load_schema(json.loads(answer.read()))
        operations = fuzz_cases.operations(schema)
        rounds = 0
        # an operation with few distinct inputs (GET /health) yields fewer than
        # max_examples cases, so rounds with new seeds continue until ``cases`` were sent
        while tally.cases < cases and rounds < FUZZ_ROUNDS:
            per_operation = math.ceil((cases - tally.cases) / len(operations))
            for operation in operations:
                fuzz_cases.fuzz_operation(
                    operation, values, tally, per_operation, rounds, base_url=server.url,
                    timeout=REQUEST_TIMEOUT_S, headers={"Authorization": f"Bearer {token}"})
            rounds += 1
        try:
            up = health(server.url)["pid"] > 0 and server.process.poll() is None
        except OSError:
            up = False
        server_log = server.log.read_text()
    shutil.rmtree(home)  # the copy the fuzzing wrote to; the logs stay in ``folder``
    exceptions = Counter(line.strip() for line in server_log.splitlines()
                         if re.match(r"^[\w.]+(Error|Exception)\b.*:", line.strip()))
    summary = tally.summary()
    by_status: Counter[str] = sum(tally.statuses.values(), Counter())
    by_class: Counter[str] = Counter()
    for code, n in by_status.items():
        by_class[code if code == "no_response" else f"{code[0]}xx"] += n
    return {
        "section": "fuzz",
        "data": "small real repository (test_api_real_query picks) and the 'chips' labelling "
                "view (40 EuroSAT chips)",
        "generator": f"Schemathesis {schemathesis_version()}: per operation "
                     f"{fuzz_cases.POSITIVE_SHARE:.0%} positive cases, the rest negative; in a "
                     "positive case each field naming a repository thing gets a real value in "
                     f"a Hypothesis choice weighted {fuzz_cases.REAL_SHARE:.0%} "
                     "(tests/samplehub/api/fuzz_cases.py)",
        "cases": tally.cases, "cases_asked": cases, "rounds": rounds,
        "server_errors": by_class["5xx"] + by_class["no_response"],
        "by_status_class": dict(sorted(by_class.items())),
        "by_status": dict(sorted(by_status.items())),
        **{key: value for key, value in summary.items() if key != "outcomes_by_operation"},
        "operations": len(operations),
        "by_operation": {k: dict(sorted(v.items())) for k, v in sorted(tally.statuses.items())},
        "outcomes_by_operation": summary["outcomes_by_operation"],
        "real_values": real,
        "harvested": {"spec_ids": len(values.spec_ids) - real["spec_ids"],
                      "build_ids": len(values.build_ids) - real["build_ids"]},
        "errors_found": tally.broken[:50],
        "server_log_exceptions": dict(exceptions.most_common(10)),
        "server_up_after": up,
        "token": "every request is sent with the server's API token; negative cases may "
                 "leave it out (401)",
        "seconds": round(time.perf_counter() - started, 1),
        "code": code_state(),
        "machine": machine(),
    }


def schemathesis_version() -> str:
    """The installed Schemathesis version."""
    from importlib.metadata import version

    return version("schemathesis")


def main() -> None:
    """Print the soak or the fuzz row as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["soak", "fuzz"], required=True)
    parser.add_argument("--n", type=int, default=100_000, help="views in the soak's home")
    parser.add_argument("--users", type=int, default=32, help="closed-loop soak clients")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the soak")
    parser.add_argument("--cases", type=int, default=1000, help="fuzz requests, at least")
    args = parser.parse_args()
    if args.section == "soak":
        out = soak_row(args.n, args.users, args.seconds)
    else:
        out = fuzz_row(args.cases)
    print(json.dumps(out, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))


if __name__ == "__main__":
    main()
