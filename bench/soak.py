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
``tests/samplehub/api/test_api_real_query.py``: 100 real images each of three UC Merced
and two EuroSAT classes, UC Merced's multi-label annotation of them, features, label graph
and index from the shipped jobs; cached in ``bench/.cache/fuzz_home`` and copied for each
run, since generated writes change it) served by ``samplehub serve`` with an API token, so
the token check is on the path. Schemathesis reads the live ``/openapi.json`` and
generates requests per operation, as ``tests/samplehub/api/test_api_fuzz.py`` does in
process (valid and invalid bodies, paths and queries), in rounds with a new seed each
until at least ``cases`` requests were sent. Every request carries the token, so writes
reach their handlers rather than stopping at 401. A 5xx, or a request that got no answer,
is a server error; each is recorded with its method, path and a body excerpt, and the
exception lines of the server log are kept beside them. At the end ``GET /health`` says
whether the server is still up.

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


def fuzz_home() -> Path:
    """The small real repository of the fuzz row, built once into ``FUZZ_HOME``.

    The one the API tests serve (``build_real_repository`` of ``tests/asset_jobs.py``).
    """
    done = FUZZ_HOME / "built.json"
    if done.exists():
        return FUZZ_HOME / "home"
    if FUZZ_HOME.exists():
        raise FileExistsError(f"{FUZZ_HOME} holds a partial build; remove it and run again")
    data = require_data("ucmerced", "eurosat_rgb", "ucmerced_multilabel")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the shipped model is in the venv
    asset_jobs = load_test_helper("asset_jobs")

    from assets.resources import SampleHubResource

    start = time.perf_counter()
    home = FUZZ_HOME / "home"
    resource = SampleHubResource(overrides=[*asset_jobs.REAL_OVERRIDES, f"home={home}"])
    asset_jobs.build_real_repository(resource, data, FUZZ_HOME / "images")
    done.write_text(json.dumps({"picks": {d: list(c) for d, (_, c) in
                                          asset_jobs.REAL_PICK.items()},
                                "per_class": asset_jobs.REAL_PER_CLASS,
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
        The fuzz row (module docstring): requests by status class and operation, each 5xx
        or unanswered request, and whether the server answered ``/health`` afterwards.
    """
    import schemathesis

    source = fuzz_home()
    folder = Path(tempfile.mkdtemp(prefix="fuzz-", dir=CACHE))
    home = folder / "home"
    shutil.copytree(source, home, symlinks=True)
    token = secrets.token_urlsafe(16)
    started = time.perf_counter()
    by_class: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    by_operation: dict[str, Counter[str]] = {}
    broken: list[dict[str, Any]] = []
    with environment(SAMPLEHUB_API_TOKEN=token), serve(home, WORKERS, THREADS, folder) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        rounds = 0
        # an operation with few distinct inputs (GET /health) yields fewer than
        # max_examples cases, so rounds with new seeds continue until ``cases`` were sent
        while sum(by_class.values()) < cases and rounds < FUZZ_ROUNDS:
            per_operation = math.ceil((cases - sum(by_class.values())) / len(operations))
            for operation in operations:
                label = f"{operation.method.upper()} {operation.path}"
                answers = fuzz_operation(operation, server.url, token, per_operation, rounds)
                for status, case, what in answers:
                    code = what.split(" ")[0] if status != "no_response" else status
                    by_class[status] += 1
                    by_status[code] += 1
                    by_operation.setdefault(label, Counter())[code] += 1
                    if status in ("5xx", "no_response"):
                        broken.append({"operation": label, "path": case.formatted_path,
                                       "answer": what, "curl": case.as_curl_command()[:400]})
            rounds += 1
        try:
            up = health(server.url)["pid"] > 0 and server.process.poll() is None
        except OSError:
            up = False
        server_log = server.log.read_text()
    shutil.rmtree(home)  # the copy the fuzzing wrote to; the logs stay in ``folder``
    exceptions = Counter(line.strip() for line in server_log.splitlines()
                         if re.match(r"^[\w.]+(Error|Exception)\b.*:", line.strip()))
    return {
        "section": "fuzz", "data": "small real repository (test_api_real_query picks)",
        "cases": sum(by_class.values()), "cases_asked": cases, "rounds": rounds,
        "server_errors": by_class["5xx"] + by_class["no_response"],
        "by_status_class": dict(sorted(by_class.items())),
        "by_status": dict(sorted(by_status.items())),
        "operations": len(operations),
        "by_operation": {k: dict(sorted(v.items())) for k, v in sorted(by_operation.items())},
        "errors_found": broken[:50],
        "server_log_exceptions": dict(exceptions.most_common(10)),
        "server_up_after": up, "token": "every request carries the server's API token",
        "seconds": round(time.perf_counter() - started, 1),
        "code": code_state(),
        "machine": machine(),
    }


def fuzz_operation(operation: Any, url: str, token: str, examples: int, round_seed: int
                   ) -> list[tuple[str, Any, str]]:
    """Send up to ``examples`` generated requests of one operation, hypothesis seed ``round_seed``.

    Returns:
        Per request: its status class (``2xx`` ...) or ``no_response``, the case, the
        status and a body excerpt (or the exception).
    """
    from hypothesis import HealthCheck, Phase, given, seed, settings

    answers: list[tuple[str, Any, str]] = []

    # no shrinking: nothing raises, every answer is recorded as it came
    @given(case=operation.as_strategy())
    @seed(round_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        try:
            response = case.call(base_url=url, timeout=REQUEST_TIMEOUT_S,
                                 headers={"Authorization": f"Bearer {token}"})
            status = f"{response.status_code // 100}xx"
            what = f"{response.status_code} {response.text[:200]}"
        except Exception as exc:  # no answer at all: the server broke too
            status, what = "no_response", f"{type(exc).__name__}: {exc}"[:200]
        answers.append((status, case, what))

    call()
    return answers


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
