"""The hash-retraining sensor (cursor = catalog size at the last request) and schedule."""

from datetime import UTC, datetime
from pathlib import Path

from dagster import SkipReason, build_schedule_context, build_sensor_context, instance_for_test

from assets.resources import SampleHubResource
from orchestration.definitions import defs
from orchestration.schedules import hash_retraining_schedule
from orchestration.sensors import hash_retraining_sensor
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
