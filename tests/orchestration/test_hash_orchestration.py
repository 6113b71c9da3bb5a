"""The hash-retraining sensor (cursor = catalog size at the last request), the champion
sensor (new champion -> re-code every partition -> re-index) and the schedule."""

import json
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from hash_fixture import TINY, tiny_hash_repository

from assets.hashing import hash_codes
from assets.resources import SampleHubResource
from orchestration.definitions import defs
from orchestration.schedules import hash_retraining_schedule
from orchestration.sensors import hash_champion_sensor, hash_retraining_sensor
from samplehub.hash_models import train_hash_model
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def test_retraining_sensor_fires_once_per_batch_of_new_samples(home: Path) -> None:
    resource = SampleHubResource(overrides=["hashing.retrain_min_new_samples=10"])
    resources = {"samplehub": resource}
    with instance_for_test() as instance:
        empty = hash_retraining_sensor(build_sensor_context(instance=instance,
                                                            resources=resources))
        assert not empty.run_requests and isinstance(empty.skip_reason, SkipReason)
        resource.repository().ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
        fired = hash_retraining_sensor(build_sensor_context(instance=instance,
                                                            resources=resources))
        assert [r.run_key for r in fired.run_requests] == ["hash-retrain-12"]
        assert fired.cursor == "12"
        quiet = hash_retraining_sensor(build_sensor_context(
            instance=instance, resources=resources, cursor=fired.cursor))
        assert not quiet.run_requests and quiet.cursor == "12"
        assert "0 new samples since 12 < 10" in str(quiet.skip_reason)


def test_retraining_schedule_and_jobs_are_registered() -> None:
    when = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    with instance_for_test() as instance:
        request = hash_retraining_schedule(
            build_schedule_context(instance=instance, scheduled_execution_time=when))
    assert request.run_key == "hash-retrain-202611220400"
    assert hash_retraining_schedule.cron_schedule == "0 4 * * 0"
    for job in ("train_hash_models", "compute_hash_codes", "index_hash_codes"):
        assert defs.resolve_job_def(job) is not None
    assert defs.resolve_sensor_def("hash_retraining_sensor").job_name == "train_hash_models"


def test_new_champion_recodes_every_partition_then_reindexes_once(home: Path) -> None:
    repo = tiny_hash_repository()
    resources = {"samplehub": SampleHubResource(overrides=TINY)}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset", ["tree"])

        def tick(cursor: str | None):
            return hash_champion_sensor(build_sensor_context(
                instance=instance, resources=resources, cursor=cursor))

        none_yet = tick(None)
        assert not none_yet.run_requests and "no hash champion" in str(none_yet.skip_reason)
        train_hash_model(repo, "dmch")
        recode = tick(None)
        assert [(r.job_name, r.partition_key) for r in recode.run_requests] == [
            ("compute_hash_codes", "tree")]
        assert json.loads(recode.cursor) == {"champion": "dmch-16-v1", "indexed": False}
        waiting = tick(recode.cursor)
        assert not waiting.run_requests and "waiting for hash_codes" in str(waiting.skip_reason)
        assert materialize([hash_codes], partition_key="tree", instance=instance,
                           resources=resources).success
        index = tick(waiting.cursor)
        assert [(r.job_name, r.run_key) for r in index.run_requests] == [
            ("index_hash_codes", "hash-index-dmch-16-v1")]
        assert not tick(index.cursor).run_requests
