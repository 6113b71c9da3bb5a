"""Reliability figures: killed runs, concurrent writers, fuzzed input, a soak of the API.

Writes ``bench/results/reliability.json``; each ``--sections`` entry replaces its own row
and keeps the others, so one section can be re-run alone.

- ``kills``: the harness of ``tests/kills.py`` on all 2,100 real UC Merced images
  (default batch size, the shipped 224 px model input): ``samplehub ingest``, feature
  extraction and an IVF-PQ update, each SIGKILLed 20 times at seeded points (uniform over
  the reference run's span from its first write to its end, counted from each run's own
  first write) and re-run. Per stage: ``injected / recovered / lost / duplicated``, where
  the kills landed (mid-run, after a partial commit, with leftovers for ``fsck``), and the
  reference run's wall time.
- ``concurrency``: two ingests of different real datasets at once, two ingests of the
  same dataset at once, an ingest during an index update, two feature runs of one
  dataset at once (what two Dagster runs of one asset partition do): rows lost or
  duplicated, and the writer lock's waits.
- ``s3_faults``: ``tests/fault_proxy.py`` in front of moto's S3 server: an ingest of UC
  Merced with a tenth of all requests failing (500, 503 SlowDown, resets), then five
  ingests whose server dies after 10, 30, 50, 70 and 90 % of the flaky run's requests;
  ``injected / retried / failed_cleanly / half_committed``.
- ``mlflow_faults``: ``tests/registry_faults.py``: an MLflow tracking server (PostgreSQL
  backend) behind the fault proxy, dying at four points of four trainings that would each
  have been promoted (``injected / failed_cleanly / champion_unchanged``), flaky for five
  trainings, and dying once more under the shipped retry budget (time to the error).
- ``dagster_runs``: ``tests/dagster_runs.py``: the Dagster instance's PostgreSQL stopped
  in the middle of a UC Merced ingest run, then two runs of one partition at once.
- ``fuzz`` and ``soak``: ``bench/soak.py`` (Schemathesis against the live OpenAPI schema;
  32 clients for 10 minutes on a 100k real-view home).

Every row records the machine and its load average (``common.machine``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, load_test_helper, machine, require_data, write_json

NAME = "reliability.json"
SECTIONS = ["kills", "concurrency", "s3_faults", "mlflow_faults", "dagster_runs", "fuzz", "soak"]


def kills_row(
    data: Path, kills: int, seed: int, stages: list[str], overrides: list[str]
) -> dict[str, Any]:
    """Each of ``stages`` killed ``kills`` times over UC Merced; see the module docstring."""
    harness = load_test_helper("kills")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kills-") as work:
        results = harness.run_kills(
            str(data / "ucmerced" / "Images"), "ucmerced", Path(work), overrides,
            dict.fromkeys(stages, kills), seed=seed)
    return {
        "data": "real: UC Merced, 2,100 images of 256 px, 21 classes",
        "seed": seed,
        "overrides": overrides,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        **{stage: result.summary() for stage, result in results.items()},
    }


def concurrency_row(data: Path, per_class: int) -> dict[str, Any]:
    """The scenarios of ``tests/writers.py``: UC Merced (all) and a EuroSAT subset."""
    writers = load_test_helper("writers")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="writers-") as work:
        eurosat = Path(work) / "eurosat"
        for folder in sorted(p for p in (data / "eurosat_rgb").iterdir() if p.is_dir()):
            (eurosat / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[:per_class]:
                shutil.copy(image, eurosat / folder.name / image.name)
        rows = writers.run_scenarios(data / "ucmerced" / "Images", eurosat, Path(work) / "homes",
                                     [])
    return {
        "data": f"real: UC Merced (2,100 images) and EuroSAT RGB ({per_class} per class)",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "lost": sum(r["lost"] for r in rows),
        "duplicated": sum(r["duplicated"] for r in rows),
        "scenarios": rows,
    }


def s3_faults_row(data: Path, rate: float, seed: int) -> dict[str, Any]:
    """``tests/fault_proxy.py``'s scenarios over all of UC Merced on moto's S3 server."""
    proxy = load_test_helper("fault_proxy")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="s3-faults-") as work:
        row = proxy.fault_scenarios(data / "ucmerced" / "Images", Path(work) / "home", rate,
                                    [0.1, 0.3, 0.5, 0.7, 0.9], seed)
    return {
        "data": "real: UC Merced, 2,100 images of 256 px, into a catalog and store on moto's "
                "S3 server behind a fault-injecting proxy",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        **row,
    }


def mlflow_faults_row(rate: float, seed: int) -> dict[str, Any]:
    """``tests/registry_faults.py``'s scenarios on a PostgreSQL server of their own."""
    registry = load_test_helper("registry_faults")
    loopback = load_test_helper("loopback")
    with loopback.postgres_server() as postgres, \
            tempfile.TemporaryDirectory(prefix="mlflow-faults-") as work:
        row = registry.registry_fault_scenarios(postgres.create_database("mlflow"), Path(work),
                                                rate, seed, flaky_runs=5, shipped_budget=True)
    return {**row, "machine": machine()}


def dagster_runs_row(data: Path) -> dict[str, Any]:
    """``tests/dagster_runs.py``'s scenarios over all of UC Merced."""
    runs = load_test_helper("dagster_runs")
    images = data / "ucmerced" / "Images"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dagster-runs-") as work:
        outage = runs.postgres_outage(images, Path(work) / "outage")
        concurrent = runs.concurrent_runs(images, Path(work) / "concurrent")
    return {
        "data": "real: UC Merced, 2,100 images of 256 px (features at 64 px)",
        "runs": "dagster job execute, one process per run (the run worker's code path)",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "postgres_outage": outage,
        "concurrent_runs": concurrent,
    }


def main() -> None:
    """Run the chosen sections and merge their rows into ``bench/results/reliability.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS)
    parser.add_argument("--kills", type=int, default=20, help="kills per stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", nargs="+", default=["ingest", "features", "index"],
                        choices=["ingest", "features", "index"], help="stages to kill")
    parser.add_argument("--set", nargs="*", default=[],
                        help="Hydra overrides of the killed stages (e.g. executor.batch_size=256)")
    parser.add_argument("--per-class", type=int, default=270,
                        help="EuroSAT images per class in the concurrency scenarios")
    parser.add_argument("--fault-rate", type=float, default=0.1,
                        help="share of S3 requests that get a fault in the flaky run")
    parser.add_argument("--cases", type=int, default=1000, help="fuzz cases at least")
    parser.add_argument("--soak-n", type=int, default=100_000)
    parser.add_argument("--soak-users", type=int, default=32)
    parser.add_argument("--soak-seconds", type=int, default=600)
    args = parser.parse_args()
    data = require_data("ucmerced", "eurosat_rgb")
    path = RESULTS / NAME
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for section in args.sections:
        print(f"== {section}", flush=True)
        if section == "kills":
            # a stage re-run alone replaces its entry; its run's data and machine go beside
            row = kills_row(data, args.kills, args.seed, args.stages, args.set)
            if set(args.stages) != {"ingest", "features", "index"} or args.set:
                suffix = f" ({', '.join(args.set)})" if args.set else ""
                merged = dict(results.get("kills", {}))
                merged.update({stage + suffix: row[stage] for stage in args.stages})
                merged[f"run: {', '.join(args.stages)}{suffix}"] = {
                    k: v for k, v in row.items() if k not in args.stages}
                row = merged
            results["kills"] = row
        elif section == "concurrency":
            results["concurrency"] = concurrency_row(data, args.per_class)
        elif section == "s3_faults":
            results["s3_faults"] = s3_faults_row(data, args.fault_rate, args.seed)
        elif section == "mlflow_faults":
            results["mlflow_faults"] = mlflow_faults_row(args.fault_rate, args.seed)
        elif section == "dagster_runs":
            results["dagster_runs"] = dagster_runs_row(data)
        elif section == "fuzz":
            from soak import fuzz_row

            results["fuzz"] = fuzz_row(args.cases)
        elif section == "soak":
            from soak import soak_row

            results["soak"] = soak_row(args.soak_n, args.soak_users, args.soak_seconds)
        write_json(NAME, results)


if __name__ == "__main__":
    main()
