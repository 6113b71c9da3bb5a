"""Scale plan: per-stage costs measured here, and the throughput they imply per worker count.

``executor=spark`` splits each stage between executors, which scale with workers, and the
driver, which does not: it lists and plans the run, then commits every part file in one
Delta transaction. This script measures each cost on real data and draws what follows.

Measured (real EuroSAT RGB, the 2,700-image subset of ``scale_out.py``):

- **executor, per sample**: ingest (decode, the Zarr shard write, the Parquet part) and
  features (the shipped model at 224 px), in-process with one worker and one encoding
  thread, as CPU seconds of this process: a Spark task does the same work on one core, and
  CPU time is not inflated by other load on the machine as wall time is;
- **driver, per sample**: listing the 27,000 files and fixing their rows (wall);
- **driver, per commit**: ``Catalog.commit_files`` of k part files into the ``samples``
  table (k from 1 to 512; wall, the median of three), fitted as a + b k; commits per
  minute are 60 / (a + b).

The plan: a run of N samples on w one-core workers takes N c / w on the executors plus
N p + commit(parts) on the driver, with parts cut as ``ingest.write_parts`` cuts them
(about two per core, at most ``executor.batch_size`` rows, rounded up to whole shards).
Throughput is N over that; the driver's share alone bounds it (its ceiling), and the
crossover is the worker count past which adding workers buys less than half their worth.
Left out: fixed costs per run (a Spark job's start, the model's broadcast), which the
measured points' distance below the line shows, and index builds, which the driver trains
and merges (``scale.json``'s ``seconds.index``).

Writes ``bench/results/scale_plan.json`` and ``scale_plan.png``; the measured Spark
cluster points of ``scale.json`` are drawn beside the plan.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, RESULTS, machine, require_data, write_json
from scale_out import CACHE, subset

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from samplehub.config import load_config
from samplehub.feature_store import compute_features
from samplehub.ingest import part_size
from samplehub.repository import Repository
from samplehub.sources import SourceSpec
from samplehub.store.zarr_store import SHARD_SAMPLES

SUBSET = 2700
COMMIT_PARTS = (1, 8, 64, 512)
WORKERS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
RUN_SIZES = (27_000, 1_000_000)
HOME = CACHE / "plan"


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def executor_costs(repo: Repository, images: Path) -> dict[str, float]:
    """CPU seconds per sample of ingest and of features, one worker, one thread."""
    cpu = cpu_seconds()
    report = repo.ingest(SourceSpec(name="eurosat", uri=str(images)))
    ingest = (cpu_seconds() - cpu) / report.added
    cpu = cpu_seconds()
    features = compute_features(repo, "eurosat")
    return {"ingest_cpu_s_per_sample": ingest,
            "features_cpu_s_per_sample": (cpu_seconds() - cpu) / features.computed,
            "samples": report.added}


def planning_cost(repo: Repository, images: Path) -> float:
    """Driver wall seconds per sample to list the files and fix their rows."""
    source = repo.open_source(SourceSpec(name="eurosat_all", uri=str(images)))
    started = time.perf_counter()
    entries = [entry for batch in source.discover(4096) for entry in batch]
    rows = {entry.sample_id: row for row, entry in enumerate(entries)}
    assert len(rows) == len(entries)
    return (time.perf_counter() - started) / len(entries)


def commit_costs(repo: Repository) -> dict[str, float]:
    """Median wall seconds of ``commit_files`` of k part files, by k."""
    rows = repo.catalog.read("samples", "eurosat").slice(0, 1)
    seconds: dict[str, float] = {}
    for k in COMMIT_PARTS:
        tries = []
        for _ in range(3):
            files = [repo.catalog.write_file("samples", "plan", rows) for _ in range(k)]
            started = time.perf_counter()
            repo.catalog.commit_files("samples", files)
            tries.append(time.perf_counter() - started)
        seconds[str(k)] = statistics.median(tries)
        print(f"commit of {k} part files: {seconds[str(k)] * 1e3:.1f} ms", flush=True)
    return seconds


def parts(n: int, workers: int, batch_size: int) -> int:
    """Part files of a run of ``n`` samples on ``workers`` cores, as write_parts cuts them."""
    return -(-n // part_size(n, workers, batch_size, SHARD_SAMPLES))


def plan(costs: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """Throughput by worker count for each stage and run size, the driver's ceiling."""
    a, b = costs["commit_fit_s"]["a"], costs["commit_fit_s"]["b"]
    per_sample = {"ingest": costs["executor"]["ingest_cpu_s_per_sample"],
                  "features": costs["executor"]["features_cpu_s_per_sample"]}
    out: dict[str, Any] = {}
    for stage, c in per_sample.items():
        for n in RUN_SIZES:
            rows = []
            for w in WORKERS:
                k = parts(n, w, batch_size)
                driver = (costs["planning_s_per_sample"] * n if stage == "ingest" else 0.0) \
                    + a + b * k
                executors = n * c / w
                rows.append({"workers": w, "part_files_per_commit": k,
                             "executor_s": round(executors, 2), "driver_s": round(driver, 3),
                             "samples_per_s": round(n / (executors + driver), 1),
                             "driver_ceiling_samples_per_s": round(n / driver, 1)})
            # Past this many workers the driver takes as long as the executors.
            crossover = next((r["workers"] for r in rows if r["driver_s"] >= r["executor_s"]),
                             None)
            out[f"{stage}_{n}"] = {"rows": rows, "driver_bound_from_workers": crossover}
    return out


def measured_points() -> dict[str, Any]:
    """The Spark cluster's and threads' measured throughput from ``scale.json``."""
    path = RESULTS / "scale.json"
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text())["executors"]
    points = {}
    for executor, workers in (("spark_cluster", 2), ("threads", 2)):
        for n, run in runs[executor].items():
            if isinstance(run, dict) and "seconds" in run:
                points[f"{executor}_{n}"] = {
                    "workers": workers, "samples": int(n),
                    "ingest_samples_per_s": round(int(n) / run["seconds"]["ingest"], 1),
                    "features_samples_per_s": round(int(n) / run["seconds"]["features"], 1),
                    "load_avg_1m": run.get("load_avg_1m_before")}
    return points


def draw(result: dict[str, Any], path: Path) -> None:
    """Throughput against workers, one panel per stage, the driver's ceilings dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, stage in zip(axes, ("ingest", "features"), strict=True):
        for n, colour in zip(RUN_SIZES, ("tab:blue", "tab:orange"), strict=True):
            rows = result["plan"][f"{stage}_{n}"]["rows"]
            w = [r["workers"] for r in rows]
            ax.plot(w, [r["samples_per_s"] for r in rows], color=colour,
                    label=f"plan, run of {n:,}")
            ax.plot(w, [r["driver_ceiling_samples_per_s"] for r in rows], color=colour,
                    linestyle="--", label=f"driver's ceiling, {n:,}")
        for name, point in result["measured"].items():
            if name.startswith("spark_cluster"):
                marker = "o" if point["samples"] >= 27_000 else "s"
                ax.scatter([point["workers"]], [point[f"{stage}_samples_per_s"]], color="black",
                           marker=marker, zorder=3,
                           label=f"measured: cluster of 2, run of {point['samples']:,} "
                                 f"(load {point['load_avg_1m']})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("one-core workers")
        ax.set_ylabel("samples / s")
        ax.set_title(stage)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("executor=spark planned from per-stage costs measured on real EuroSAT "
                 "(2-core machine); fixed per-run costs (Spark job start, model broadcast) "
                 "left out", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Measure the costs, plan, draw; writes scale_plan.json and scale_plan.png."""
    data = require_data("eurosat_rgb")
    images = subset(data, SUBSET)
    shutil.rmtree(HOME, ignore_errors=True)
    config = load_config([f"home={HOME}", "executor.workers=1", "model.threads=1"])
    repo = Repository(config)
    started_on = machine()
    executor = executor_costs(repo, images)
    print(f"executor costs: {executor}", flush=True)
    planning = planning_cost(repo, data / "eurosat_rgb")
    commits = commit_costs(repo)
    k = np.asarray([int(x) for x in commits], dtype=float)
    b, a = np.polyfit(k, np.asarray(list(commits.values())), 1)
    costs = {"executor": executor, "planning_s_per_sample": planning,
             "commit_s_by_part_files": commits,
             "commit_fit_s": {"a": float(a), "b": float(b)},
             "commits_per_minute": round(60 / (a + b), 1)}
    result = {
        "data": f"real: EuroSAT RGB, the {SUBSET:,}-image subset (costs) and all 27,000 "
                "(listing); runs of 1,000,000 are planned, not run",
        "clients": 1,
        "costs": costs,
        "plan": plan(costs, load_config(["executor=spark"]).executor.batch_size),
        "measured": measured_points(),
        "machine_at_start": started_on,
        "machine": machine(),
    }
    write_json("scale_plan.json", result)
    draw(result, REPO / "bench" / "results" / "scale_plan.png")
    shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
