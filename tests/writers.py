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
- ``ingest_during_index``: an ingest of a new dataset while the index is updated.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from kills import SAMPLEHUB, environment, index_snapshot, open_home, python_stage

from samplehub.fsck import check_repository
from samplehub.repository import Repository

REPO = Path(__file__).resolve().parents[1]


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


def run_scenarios(first: Path, second: Path, work: Path, overrides: list[str]) -> list[dict]:
    """The four scenarios over two folder-tree datasets (``first`` gets features, an index)."""
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
    return rows
