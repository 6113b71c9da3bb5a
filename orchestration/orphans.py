"""Runs left ``STARTED`` by a worker that died without telling the instance.

A run worker records its end in the instance's database. A worker that is killed (out of
memory, SIGKILL) cannot record it, and neither can one whose database went away mid-run
(PostgreSQL restarted, the network cut: it gives up after ``dagster-postgres``' connection
retries and exits); either way its run stays ``STARTED`` forever. Worse, it keeps the
``samplehub_heavy`` pool slot that its step claimed (``assets/partitions.py``), so every
later ingest, feature or index step waits for that slot and the whole pipeline stalls.
SampleHub's data is not at risk: every write is a Delta commit or a locked store write
(``samplehub.locks``), and a re-run finishes the work.

Dagster's run monitoring can only time such a run out
(``run_monitoring.max_runtime_seconds``), since the default run launcher cannot check its
workers' health. The runs of that launcher
are processes on the daemon's host, and each records its pid in an engine event, so a run
whose process is gone is an orphan for certain: :func:`fail_orphaned_runs` marks it failed
with the reason and frees its pool slots. ``orphaned_runs_sensor``
(:mod:`orchestration.sensors`) does it every minute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultRunLauncher,
    RunsFilter,
)


@dataclass(frozen=True)
class Orphan:
    """A ``STARTED`` run whose worker process no longer exists."""

    run_id: str
    job_name: str
    pid: int


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that executes ``run_id`` (its latest engine event with a pid)."""
    pid = None
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = event.engine_event_data if event is not None else None
        value = data.metadata.get("pid") if data is not None else None
        if value is not None:
            pid = int(str(value.value))
    return pid


def process_exists(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def orphaned_runs(instance: DagsterInstance) -> list[Orphan]:
    """``STARTED`` runs of this host's default run launcher whose worker process is gone.

    Runs of other launchers (containers, Kubernetes) are not judged here: their pids mean
    nothing on this host, and run monitoring checks those workers' health itself.
    """
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []
    found = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = worker_pid(instance, run.run_id)
        if pid is not None and not process_exists(pid):
            found.append(Orphan(run.run_id, run.job_name, pid))
    return found


def fail_orphaned_runs(instance: DagsterInstance) -> list[Orphan]:
    """Mark every orphaned run failed, saying why, and free the pool slots it holds."""
    orphans = orphaned_runs(instance)
    for orphan in orphans:
        run = instance.get_run_by_id(orphan.run_id)
        if run is None or run.status != DagsterRunStatus.STARTED:
            continue  # it ended between the two reads
        instance.report_run_failed(
            run,
            f"run worker process {orphan.pid} is gone but the run was never marked ended (it "
            "was killed, or the instance database was unreachable when it stopped); "
            "SampleHub's writes are atomic, so re-run the job to finish its work",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(orphan.run_id)
    return orphans
