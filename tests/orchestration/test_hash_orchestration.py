"""The hash-retraining sensor (cursor = catalog size at the last request), the schedule, and
the automation that codes every partition with a new champion and then re-indexes once."""

from datetime import UTC, datetime
from pathlib import Path

from automation_loop import AutomationLoop
from dagster import (
    AssetSelection,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from hash_fixture import TINY, tiny_hash_repository

from assets.features import image_features
from assets.hashing import dmch_model
from assets.resources import SampleHubResource
from orchestration.definitions import defs
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
    hash_retraining_schedule = defs.resolve_schedule_def("hash_retraining_schedule")
    when = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    with instance_for_test() as instance:
        request = hash_retraining_schedule(
            build_schedule_context(instance=instance, scheduled_execution_time=when))
    assert request.run_key == "hash-retrain-202611220400"
    assert hash_retraining_schedule.cron_schedule == "0 4 * * 0"
    for job in ("train_hash_models", "compute_hash_codes", "index_hash_codes"):
        assert defs.resolve_job_def(job) is not None
    assert defs.resolve_sensor_def("hash_retraining_sensor").job_name == "train_hash_models"


def test_a_champion_codes_every_partition_then_indexes_once(home: Path) -> None:
    """The automation conditions of ``hash_codes`` / ``hash_index``: nothing before a
    champion; a champion codes each partition, then one Hamming index; a retrained model
    that does not beat the champion changes no code, so nothing is re-indexed."""
    tiny_hash_repository()
    resource = SampleHubResource(overrides=TINY)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset", ["tree"])
        loop = AutomationLoop(instance, resource, AssetSelection.groups("hashing"))
        assert not loop.tick()
        run = materialize([image_features], partition_key="tree", instance=instance,
                          resources=loop.resources)
        assert run.success
        assert not loop.tick(), "no champion yet: no codes"
        assert materialize([dmch_model], instance=instance, resources=loop.resources).success
        assert loop.tick() == [("hash_codes", "tree")]
        assert loop.tick() == [("hash_index", None)]
        assert not loop.tick()
        retrained = materialize([dmch_model], instance=instance, resources=loop.resources)
        assert retrained.asset_materializations_for_node("dmch_model")[0].metadata[
            "promoted"].value == "no"
        assert loop.tick() == [("hash_codes", "tree")]
        assert not loop.tick(), "same champion, same codes: the index stays"
        assert not loop.failed
