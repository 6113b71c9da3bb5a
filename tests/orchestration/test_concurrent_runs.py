"""Two Dagster runs materialize the same asset partition at once.

The scenario of ``tests/dagster_runs.py::concurrent_runs``: two ``dagster job execute``
processes of ``ingest_dataset[ucm]`` start together on one home and one (embedded SQLite)
Dagster instance, over all 2,100 real UC Merced images; then two of
``compute_features[ucm]``. The instance's ``samplehub_heavy`` pool (``infra/dagster.yaml``:
one heavy step at a time) serializes their steps, and the repository's writer locks
(``samplehub.locks``) serialize writers outside Dagster
(``tests/samplehub/test_concurrent_writers.py``): both runs succeed and record their
materialization, and every image is catalogued and encoded exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_runs import concurrent_runs

pytestmark = pytest.mark.integration


def test_two_runs_of_one_partition_lose_and_duplicate_nothing(
    shared_data: Path, tmp_path: Path
) -> None:
    row = concurrent_runs(shared_data / "ucmerced" / "Images", tmp_path)

    for job in ("ingest_dataset", "compute_features"):
        assert row[job]["exits"] == [0, 0], row[job]["failed_output"]
    assert row["runs"] == ["compute_features SUCCESS"] * 2 + ["ingest_dataset SUCCESS"] * 2
    assert row["materialized"] == (
        ["image_features[ucm]"] * 2 + ["label_tree[ucm]"] * 2 + ["samples[ucm]"] * 2)
    assert row["samples"] == row["features"] == {"rows": 2100, "distinct": 2100}
    assert row["files"] == 2100 and not row["findings"]
