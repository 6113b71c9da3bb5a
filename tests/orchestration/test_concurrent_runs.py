"""Two Dagster runs materialize the same asset partition at once.

Two ``dagster job execute`` processes of ``ingest_dataset[ucm]`` start together on one
home and one (embedded SQLite) Dagster instance, over all 2,100 real UC Merced images;
then two of ``compute_features[ucm]``. The instance's ``samplehub_heavy`` pool
(``infra/dagster.yaml``: one heavy step at a time) serializes their steps, and the
repository's writer locks (``samplehub.locks``) would serialize writers outside Dagster
(``tests/samplehub/test_concurrent_writers.py``): both runs succeed and record their
materialization, and every image is catalogued and encoded exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from job_runs import job_command
from writers import together

from assets.partitions import dataset_partitions
from samplehub.config import load_config
from samplehub.fsck import check_repository
from samplehub.instance import write_instance_yaml
from samplehub.repository import Repository

pytestmark = pytest.mark.integration


def test_two_runs_of_one_partition_lose_and_duplicate_nothing(
    shared_data: Path, tmp_path: Path
) -> None:
    images = shared_data / "ucmerced" / "Images"
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "ucm.yaml").write_text(f"name: ucm\nuri: {images}\n")
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    write_instance_yaml(load_config([f"home={home}"]), dagster_home)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SAMPLEHUB_HOME": str(home)}
    overrides = [f"sources_dir={tmp_path / 'sources'}", "model.resolution=64"]
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, ["ucm"])

    for job in ("ingest_dataset", "compute_features"):
        command = job_command(job, "ucm", overrides, tmp_path)
        codes, outputs, _ = together([command, command], env)
        assert codes == [0, 0], "\n".join(o[-2000:] for o in outputs)

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["compute_features", "compute_features",
                                                    "ingest_dataset", "ingest_dataset"]
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        for asset in ("samples", "image_features"):
            records = instance.fetch_materializations(AssetKey(asset), limit=10).records
            assert [r.partition_key for r in records] == ["ucm", "ucm"]

    repo = Repository(load_config([f"home={home}"]))
    n = len(list(images.rglob("*.jpg")))
    for table in ("samples", "features"):
        ids = repo.catalog.read(table, "ucm", columns=["sample_id"]).column("sample_id")
        assert len(ids) == len(np.unique(ids.to_numpy())) == n, table
    report = check_repository(repo)
    assert not report.findings, report.findings
