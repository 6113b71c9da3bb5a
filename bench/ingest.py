"""Ingest throughput against main paper section 4.3.1 (~55 samples/s on a 5-node cluster).

The paper ingests 100,000 samples in 30 min on that cluster.

Ingests EuroSAT (27,000) and UC Merced (2,100) into a fresh home with the configured
thread pool, and the same with one worker as the in-run baseline. Writes
``bench/results/ingest.json``. Bar: EuroSAT >= 150 samples/s on 2 cores.
"""

from __future__ import annotations

import os
import tempfile

from common import machine, require_data, write_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from samplehub.config import load_config
from samplehub.repository import Repository

BAR_SAMPLES_PER_S = 150.0


def run(dataset: str, workers: int) -> dict[str, object]:
    """Ingest one configured source into a fresh home; one result row."""
    with tempfile.TemporaryDirectory(prefix="samplehub-bench-") as home:
        os.environ["SAMPLEHUB_HOME"] = home
        repo = Repository(load_config([f"executor.workers={workers}"]))
        report = repo.ingest(repo.sources()[dataset])
    return {
        "dataset": dataset,
        "samples": report.added,
        "seconds": round(report.seconds, 2),
        "samples_per_s": round(report.samples_per_s, 1),
        "workers": workers,
        **machine(),
    }


def main() -> None:
    """Threaded runs and single-worker baselines for both datasets."""
    require_data("eurosat_rgb", "ucmerced/Images")
    workers = load_config().executor.workers
    rows = []
    for dataset in ("eurosat", "ucmerced"):
        for n in (workers, 1):
            row = run(dataset, n)
            print(row)
            rows.append(row)
    for row in rows:
        single = next(r for r in rows if r["dataset"] == row["dataset"] and r["workers"] == 1)
        row["speedup_vs_1_worker"] = round(
            float(row["samples_per_s"]) / float(single["samples_per_s"]), 2
        )
        if row["dataset"] == "eurosat":
            row["bar_samples_per_s"] = BAR_SAMPLES_PER_S
            row["meets_bar"] = float(row["samples_per_s"]) >= BAR_SAMPLES_PER_S
    write_json("ingest.json", rows)


if __name__ == "__main__":
    main()
