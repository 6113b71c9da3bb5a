"""Schedules: a periodic rescan of every dataset and a periodic retraining of the hash models.

A rescan picks up new files in every dataset partition; a retraining run is promoted only if
it beats the champion.

Their cron strings are configuration (``rescan_cron``, ``hashing.retrain_cron``), so the
schedules are built by :func:`build_schedules` from a loaded configuration, which
``orchestration.definitions`` passes once; importing this module composes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from assets.ingest import INGEST_SELECTION
from assets.partitions import DATASET_PARTITIONS
from jobs.hashing import hash_training_job
from jobs.ingest import ingest_job
from samplehub.config import SampleHubConfig


def rescan_schedule(cron: str) -> ScheduleDefinition:
    """The rescan of every registered dataset on ``cron`` (``rescan_cron``)."""

    @schedule(job=ingest_job, cron_schedule=cron, default_status=DefaultScheduleStatus.RUNNING)
    def rescan_schedule(context: ScheduleEvaluationContext) -> Iterator[RunRequest]:
        """One ingestion run per registered dataset; unchanged datasets add zero rows.

        New files in a dataset are catalogued; the automation then encodes and indexes just
        those samples (``samples`` reports a new data version only when rows were added).
        """
        for name in context.instance.get_dynamic_partitions(DATASET_PARTITIONS):
            yield RunRequest(
                partition_key=name,
                run_key=f"rescan-{name}-{context.scheduled_execution_time:%Y%m%d%H%M}",
                asset_selection=INGEST_SELECTION,  # the automation takes it from there
            )

    return rescan_schedule


def hash_retraining_schedule(cron: str) -> ScheduleDefinition:
    """The retraining of the hash models on ``cron`` (``hashing.retrain_cron``)."""

    @schedule(
        job=hash_training_job, cron_schedule=cron, default_status=DefaultScheduleStatus.RUNNING
    )
    def hash_retraining_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        """Retrain DMCH and DUWH on the current features (``hashing.retrain_cron``)."""
        return RunRequest(run_key=f"hash-retrain-{context.scheduled_execution_time:%Y%m%d%H%M}")

    return hash_retraining_schedule


def build_schedules(config: SampleHubConfig) -> list[ScheduleDefinition]:
    """Every schedule, on the cron strings of ``config``."""
    return [
        rescan_schedule(config.rescan_cron),
        hash_retraining_schedule(config.hashing.retrain_cron),
    ]
