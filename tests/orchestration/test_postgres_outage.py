"""PostgreSQL, the Dagster instance's database, goes away in the middle of a run.

A real run of ``ingest_dataset`` (``dagster job execute``: the run worker's code path, in
its own process) ingests all of UC Merced into a home whose Dagster instance lives in a
PostgreSQL server on loopback. After the run's second catalog commit the server is
stopped as a crash would (``pg_ctl -m immediate``). Then:

- the run fails visibly: a non-zero exit and the database error on its console;
- the catalog holds committed batches only, no sample twice, and the repository check
  finds nothing that is not reclaimable;
- with the server back, the run is still ``STARTED`` and holds the ``samplehub_heavy``
  pool slot, which would stall every later heavy step; one evaluation of
  ``orphaned_runs_sensor`` marks it failed and frees the slot;
- a second run then completes: ``SUCCESS``, its materialization recorded, all 2,100
  images catalogued once and readable, the repository check clean.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    build_sensor_context,
)
from job_runs import job_command
from loopback import postgres_server

from assets.partitions import HEAVY_POOL, dataset_partitions
from orchestration.sensors import orphaned_runs_sensor
from samplehub.config import load_config
from samplehub.fsck import check_repository
from samplehub.instance import write_instance_yaml
from samplehub.repository import Repository

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def commits(home: Path) -> int:
    """Commits of the ``samples`` table so far."""
    log = home / "catalog" / "samples" / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def test_a_run_outlives_its_instance_database_and_the_next_one_completes(
    shared_data: Path, tmp_path: Path
) -> None:
    images = shared_data / "ucmerced" / "Images"
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "ucm.yaml").write_text(f"name: ucm\nuri: {images}\n")
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    with postgres_server() as postgres:
        config = load_config(["instance=postgres", f"instance.postgres_url={postgres.url()}"])
        write_instance_yaml(config, dagster_home)
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SAMPLEHUB_HOME": str(home)}
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.add_dynamic_partitions(dataset_partitions.name, ["ucm"])

        command = job_command("ingest_dataset", "ucm", [
            f"sources_dir={tmp_path / 'sources'}", "executor.batch_size=256"], tmp_path)
        log = (tmp_path / "first.log").open("w")
        first = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while commits(home) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before its second commit"
        postgres.stop("immediate")
        assert first.wait(timeout=300) != 0
        output = (tmp_path / "first.log").read_text()
        assert "too many retries for DB connection" in output

        repo = Repository(load_config([f"home={home}"]))
        ids = repo.catalog.read("samples", "ucm", columns=["sample_id"]).column("sample_id")
        assert len(ids) == len(np.unique(ids.to_numpy())) > 0
        assert all(f.reclaimable for f in check_repository(repo).findings)

        postgres.start()
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            (stuck,) = instance.get_runs()
            assert stuck.status == DagsterRunStatus.STARTED
            holders = instance.event_log_storage.get_concurrency_info(HEAVY_POOL).claimed_slots
            assert [s.run_id for s in holders] == [stuck.run_id]

            orphaned_runs_sensor(build_sensor_context(instance=instance))
            failed = instance.get_run_by_id(stuck.run_id)
            assert failed is not None and failed.status == DagsterRunStatus.FAILURE
            assert not instance.event_log_storage.get_concurrency_info(HEAVY_POOL).claimed_slots

        second = subprocess.run(command, cwd=REPO, env=env, timeout=300,
                                capture_output=True, text=True)
        assert second.returncode == 0, second.stdout[-3000:]
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            latest = instance.get_runs(limit=1)[0]
            assert latest.status == DagsterRunStatus.SUCCESS
            events = instance.all_logs(latest.run_id,
                                       of_type=DagsterEventType.ASSET_MATERIALIZATION)
            assert {(e.dagster_event.asset_key, e.dagster_event.partition)
                    for e in events if e.dagster_event} >= {(AssetKey("samples"), "ucm")}

    repo = Repository(load_config([f"home={home}"]))
    ids = repo.catalog.read("samples", "ucm", columns=["sample_id"]).column("sample_id")
    assert len(ids) == len(np.unique(ids.to_numpy())) == len(list(images.rglob("*.jpg")))
    report = check_repository(repo)
    assert not report.findings, report.findings
