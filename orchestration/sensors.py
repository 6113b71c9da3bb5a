"""Sensors: new datasets, hash retraining, the automation conditions and orphaned runs.

A new dataset (a new conf/sources/*.yaml or a new folder under the watched root) becomes a
partition and a run of the ingestion job; enough new samples since the hash champion was
trained request a retraining run; the automation condition sensor carries everything
downstream of ``samples`` (``assets/automation.py``); runs whose worker died without
recording it are marked failed (``orchestration/orphans.py``).

All of them are on in the shipped definitions: a deployment started with ``dg dev``
ingests and indexes a dropped folder without anyone switching a sensor on.
"""

from __future__ import annotations

import json

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.ingest import INGEST_SELECTION
from assets.partitions import DATASET_PARTITIONS, dataset_partitions
from assets.resources import SampleHubResource
from jobs.hashing import hash_training_job
from jobs.ingest import ingest_job
from orchestration.orphans import fail_orphaned_runs
from samplehub.models.hash_model import retraining_due

automation_sensor = AutomationConditionSensorDefinition(
    "samplehub_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Evaluates every asset's automation condition (assets/automation.py).",
)


@sensor(job=ingest_job, minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
def new_dataset_sensor(
    context: SensorEvaluationContext, samplehub: SampleHubResource
) -> SensorResult:
    """Add a partition and request an ingestion run for every new dataset whose data exists.

    The run materializes ``samples`` alone: ``label_tree`` and everything after it follow
    from its new data version through the automation conditions, so one path requests
    them. (A run carrying both raced the automation's next evaluation, which could see the
    new ``samples`` version and request ``label_tree`` a second time.)

    Candidates are the configured sources and the sub-folders of ``watch_root``
    (:meth:`~samplehub.repository.Repository.available_sources`); a source whose path is
    absent is not requested. The cursor holds the names already handled, so a dataset is
    requested once even if its partition is deleted and the sensor ticks again.
    """
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    existing = set(context.instance.get_dynamic_partitions(DATASET_PARTITIONS))
    available = samplehub.repository().available_sources()
    new = [name for name in sorted(available) if name not in seen | existing]
    if not new:
        return SensorResult(
            skip_reason=SkipReason(f"no new dataset among {len(available)} available sources"),
            cursor=json.dumps(sorted(seen)),
        )
    return SensorResult(
        run_requests=[
            RunRequest(partition_key=name, run_key=f"new-dataset-{name}",
                       asset_selection=INGEST_SELECTION)
            for name in new
        ],
        dynamic_partitions_requests=[dataset_partitions.build_add_request(new)],
        cursor=json.dumps(sorted(seen | set(new))),
    )


@sensor(
    job=hash_training_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.RUNNING
)
def hash_retraining_sensor(
    context: SensorEvaluationContext, samplehub: SampleHubResource
) -> SensorResult:
    """Request retraining once ``hashing.retrain_min_new_samples`` samples have landed.

    New samples count from the later of the champion's training-time catalog size (its
    run's ``catalog_samples`` tag) and the cursor, the catalog size at the last request,
    so one batch of new data requests one run.
    """
    last = int(context.cursor) if context.cursor else 0
    check = retraining_due(samplehub.repository(), last)
    if not check.due:
        return SensorResult(
            skip_reason=SkipReason(
                f"{check.current - check.baseline} new samples since {check.baseline} "
                f"< {check.threshold} (hashing.retrain_min_new_samples)"
            ),
            cursor=context.cursor,
        )
    return SensorResult(
        run_requests=[RunRequest(run_key=f"hash-retrain-{check.current}")],
        cursor=str(check.current),
    )


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def orphaned_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    """Mark runs failed whose worker process died unrecorded, and free their pool slots.

    Such a run would otherwise hold its ``samplehub_heavy`` slot forever and stall every
    later heavy step (:mod:`orchestration.orphans`). It requests no run: re-running the
    failed work is the user's decision, or the rescan schedule's.
    """
    failed = fail_orphaned_runs(context.instance)
    if failed:
        return SkipReason("marked failed: " + ", ".join(
            f"{o.job_name} {o.run_id[:8]} (pid {o.pid})" for o in failed))
    return SkipReason("no orphaned run")
