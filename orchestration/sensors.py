"""Sensors: a new dataset (a new conf/sources/*.yaml or a new folder under the watched
root) becomes a partition and a run of the ingestion job; enough new samples since the
hash champion was trained request a retraining run; a newly promoted hash champion
re-codes every dataset and then rebuilds the Hamming index."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import dataset_partitions
from assets.resources import SampleHubResource
from jobs.hashing import hash_codes_job, hash_index_job, hash_training_job
from jobs.ingest import ingest_job
from samplehub.config import load_config, load_sources
from samplehub.hash_models import champion, retraining_due


def candidate_datasets() -> list[str]:
    """Dataset names from source files and from sub-folders of ``watch_root``."""
    config = load_config()
    names = set(load_sources(config))
    if config.watch_root and Path(config.watch_root).is_dir():
        names |= {p.name for p in Path(config.watch_root).iterdir() if p.is_dir()}
    return sorted(names)


@sensor(job=ingest_job, minimum_interval_seconds=60)
def new_dataset_sensor(context: SensorEvaluationContext) -> SensorResult:
    """Add a partition and request a run for every dataset not seen before.

    The cursor holds the names already handled, so a dataset is requested once even if
    its partition is deleted and the sensor ticks again.
    """
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    existing = set(context.instance.get_dynamic_partitions(dataset_partitions.name))
    new = [name for name in candidate_datasets() if name not in seen | existing]
    return SensorResult(
        run_requests=[
            RunRequest(partition_key=name, run_key=f"new-dataset-{name}") for name in new
        ],
        dynamic_partitions_requests=[dataset_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps(sorted(seen | set(new))),
    )


@sensor(job=hash_training_job, minimum_interval_seconds=300)
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


@sensor(jobs=[hash_codes_job, hash_index_job], minimum_interval_seconds=120)
def hash_champion_sensor(
    context: SensorEvaluationContext, samplehub: SampleHubResource
) -> SensorResult:
    """Re-code every dataset with a newly promoted champion, then rebuild the Hamming index.

    ``dmch_model``/``duwh_model`` promote a run only when it beats the champion, so the
    codes change only then. The cursor holds the champion last acted on and whether its
    index was requested: a new champion requests ``hash_codes`` for every dataset
    partition; once each partition's latest ``hash_codes`` materialization carries that
    model, ``hash_index`` is requested once.
    """
    state = json.loads(context.cursor) if context.cursor else {}
    found = champion(samplehub.repository().config)
    if found is None:
        return SensorResult(
            skip_reason=SkipReason("no hash champion yet (materialize dmch_model or duwh_model)"),
            cursor=context.cursor,
        )
    model = f"{found.name}-v{found.version}"
    partitions = context.instance.get_dynamic_partitions(dataset_partitions.name)
    if state.get("champion") != model:
        return SensorResult(
            run_requests=[
                RunRequest(job_name=hash_codes_job.name, partition_key=p,
                           run_key=f"hash-codes-{model}-{p}")
                for p in partitions
            ],
            cursor=json.dumps({"champion": model, "indexed": False}),
        )
    if state.get("indexed"):
        return SensorResult(skip_reason=SkipReason(f"{model} is coded and indexed"),
                            cursor=context.cursor)
    pending = [p for p in partitions if coded_by(context.instance, p) != model]
    if pending:
        return SensorResult(
            skip_reason=SkipReason(f"waiting for hash_codes of {pending} with {model}"),
            cursor=context.cursor,
        )
    return SensorResult(
        run_requests=[RunRequest(job_name=hash_index_job.name, run_key=f"hash-index-{model}")],
        cursor=json.dumps({"champion": model, "indexed": True}),
    )


def coded_by(instance: DagsterInstance, partition: str) -> str | None:
    """The ``model`` of the latest ``hash_codes`` materialization of ``partition``."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("hash_codes"), asset_partitions=[partition]),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("model")
    return None if value is None else str(value.value)
