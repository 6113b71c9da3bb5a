"""Real Dagster runs in processes of their own, under an outage or two at once.

Each run is ``dagster job execute`` (the run worker's code path) of a job of
``orchestration.definitions`` for one dataset partition, over all 2,100 real UC Merced
images. Each scenario returns a row of facts that its test asserts and
``bench/reliability.py`` records:

- :func:`postgres_outage`: the instance lives in PostgreSQL on loopback, which is stopped
  as a crash would (``pg_ctl -m immediate``) after the run's second catalog commit; then
  the server comes back, ``orphaned_runs_sensor`` is evaluated once, and the run is
  started again.
- :func:`concurrent_runs`: two runs of ``ingest_dataset`` start together on one home and
  one (embedded SQLite) instance, then two of ``compute_features``.

Used by ``tests/orchestration/test_postgres_outage.py``,
``tests/orchestration/test_concurrent_runs.py`` and ``bench/reliability.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_sensor_context,
)
from loopback import postgres_server
from writers import together

from assets.partitions import HEAVY_POOL, dataset_partitions
from orchestration.sensors import orphaned_runs_sensor
from samplehub.config import load_config
from samplehub.fsck import check_repository
from samplehub.instance import write_instance_yaml
from samplehub.repository import Repository

REPO = Path(__file__).resolve().parents[1]
PARTITION = "ucm"
PASSWORD = "instance-s3cret"
"""Put in the instance's URL (the loopback server trusts any password); no output may show it."""


def job_command(job: str, overrides: list[str], work: Path) -> list[str]:
    """argv of ``dagster job execute`` of ``job[ucm]`` with Hydra ``overrides``."""
    config = {"resources": {"samplehub": {"config": {"overrides": overrides}}}}
    path = work / f"{job}.yaml"
    path.write_text(json.dumps(config))
    dagster = Path(sys.executable).with_name("dagster")
    return [str(dagster), "job", "execute", "-m", "orchestration.definitions", "-j", job,
            "--tags", json.dumps({"dagster/partition": PARTITION}), "-c", str(path)]


def deployment(images: Path, work: Path) -> tuple[Path, Path, list[str]]:
    """A source ``ucm`` of ``images``; returns the home, ``DAGSTER_HOME`` and overrides."""
    (work / "sources").mkdir(parents=True)
    (work / "sources" / f"{PARTITION}.yaml").write_text(f"name: {PARTITION}\nuri: {images}\n")
    return work / "home", work / "dagster", [f"sources_dir={work / 'sources'}"]


def catalogued(home: Path, table: str = "samples") -> tuple[int, int]:
    """Rows and distinct sample ids of ``table`` for the partition."""
    repo = Repository(load_config([f"home={home}"]))
    ids = repo.catalog.read(table, PARTITION, columns=["sample_id"]).column("sample_id")
    return len(ids), len(np.unique(ids.to_numpy()))


def findings(home: Path) -> list[dict[str, Any]]:
    """The repository check's findings, as rows."""
    report = check_repository(Repository(load_config([f"home={home}"])))
    return [{"where": f.where, "what": f.what, "reclaimable": f.reclaimable}
            for f in report.findings]


def commits(home: Path) -> int:
    """Commits of the ``samples`` table so far."""
    log = home / "catalog" / "samples" / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def materialized(instance: DagsterInstance, run_id: str) -> list[str]:
    """``asset[partition]`` of every materialization ``run_id`` recorded."""
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    return sorted(f"{e.dagster_event.asset_key.to_user_string()}[{e.dagster_event.partition}]"
                  for e in events if e.dagster_event and e.dagster_event.asset_key)


def postgres_outage(images: Path, work: Path) -> dict[str, Any]:
    """Ingest with the instance database stopped mid-run; see the module docstring."""
    home, dagster_home, overrides = deployment(images, work)
    started = time.perf_counter()
    command = job_command("ingest_dataset", [*overrides, "executor.batch_size=256"], work)
    row: dict[str, Any] = {"files": sum(1 for p in images.rglob("*") if p.is_file())}
    with postgres_server() as postgres:
        url = postgres.url().replace("dagster@", f"dagster:{PASSWORD}@")
        config = load_config(["instance=postgres", f"instance.postgres_url={url}"])
        write_instance_yaml(config, dagster_home)
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SAMPLEHUB_HOME": str(home)}
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.add_dynamic_partitions(dataset_partitions.name, [PARTITION])

        with (work / "first.log").open("w") as log:
            first = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while commits(home) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        row["alive_at_stop"] = first.poll() is None
        postgres.stop("immediate")
        stopped = time.perf_counter()
        row["first_exit"] = first.wait(timeout=300)
        row["first_seconds_after_stop"] = round(time.perf_counter() - stopped, 1)
        output = (work / "first.log").read_text()
        row["first_shows_db_error"] = "too many retries for DB connection" in output
        row["password_shown"] = PASSWORD in output
        row["rows_after_first"], row["distinct_after_first"] = catalogued(home)
        row["findings_after_first"] = findings(home)

        postgres.start()
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            (stuck,) = instance.get_runs()
            row["first_status_after_restart"] = stuck.status.value
            row["slot_held_by_first"] = [
                s.run_id == stuck.run_id
                for s in instance.event_log_storage.get_concurrency_info(HEAVY_POOL).claimed_slots
            ] == [True]
            result = orphaned_runs_sensor(build_sensor_context(instance=instance))
            row["sensor"] = getattr(result, "skip_message", str(result))
            failed = instance.get_run_by_id(stuck.run_id)
            row["first_status_after_sensor"] = failed.status.value if failed else None
            row["slots_held_after_sensor"] = len(
                instance.event_log_storage.get_concurrency_info(HEAVY_POOL).claimed_slots)

        second = subprocess.run(command, cwd=REPO, env=env, timeout=300, capture_output=True,
                                text=True)
        row["second_exit"] = second.returncode
        row["second_output_tail"] = second.stdout[-1500:] if second.returncode else ""
        row["password_shown"] = row["password_shown"] or PASSWORD in second.stdout + second.stderr
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            latest = instance.get_runs(limit=1)[0]
            row["second_status"] = latest.status.value
            row["second_materialized"] = materialized(instance, latest.run_id)
    row["rows"], row["distinct"] = catalogued(home)
    row["findings"] = findings(home)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def concurrent_runs(images: Path, work: Path) -> dict[str, Any]:
    """Two runs of one partition at once, ingest then features; see the module docstring."""
    home, dagster_home, overrides = deployment(images, work)
    write_instance_yaml(load_config([f"home={home}"]), dagster_home)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SAMPLEHUB_HOME": str(home)}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, [PARTITION])
    row: dict[str, Any] = {"files": sum(1 for p in images.rglob("*") if p.is_file())}
    for job in ("ingest_dataset", "compute_features"):
        command = job_command(job, [*overrides, "model.resolution=64"], work)
        codes, outputs, seconds = together([command, command], env)
        row[job] = {"exits": codes, "seconds": round(seconds, 1),
                    "failed_output": [o[-1500:] for c, o in zip(codes, outputs, strict=True)
                                      if c]}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        row["runs"] = sorted(f"{r.job_name} {r.status.value}" for r in runs)
        row["materialized"] = sorted(m for r in runs for m in materialized(instance, r.run_id))
    for table in ("samples", "features"):
        row[table] = dict(zip(("rows", "distinct"), catalogued(home, table), strict=True))
    row["findings"] = findings(home)
    return row
