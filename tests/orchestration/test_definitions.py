"""Dagster glue in-process: the definitions load, a partition materializes with passing
checks, the sensor adds partitions once, the schedule requests every partition."""

import importlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    SensorResult,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from assets.partitions import dataset_partitions
from orchestration.definitions import defs
from orchestration.resources import RESOURCES
from orchestration.sensors import new_dataset_sensor
from samplehub.config import load_config

FIXTURES = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def sources(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of conf/ whose sources/ holds one fixture dataset; SAMPLEHUB_CONF points at it."""
    conf = tmp_path / "conf"
    repo_conf = Path(__file__).resolve().parents[2] / "conf"
    for path in repo_conf.rglob("*.yaml"):
        if "sources" not in path.parts:
            target = conf / path.relative_to(repo_conf)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    (conf / "sources").mkdir()
    (conf / "sources" / "tree.yaml").write_text(
        f"name: tree\nuri: {FIXTURES / 'folder_tree'}\nkind: folder_tree\n"
    )
    monkeypatch.setenv("SAMPLEHUB_CONF", str(conf))
    return conf / "sources"


def test_definitions_are_loadable() -> None:
    Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("ingest_dataset") is not None


def materialize_partition(instance: DagsterInstance, key: str) -> ExecuteInProcessResult:
    instance.add_dynamic_partitions(dataset_partitions.name, [key])
    return defs.resolve_job_def("ingest_dataset").execute_in_process(
        partition_key=key, instance=instance
    )


def test_partition_materializes_with_metadata_and_passing_checks(sources: Path) -> None:
    with instance_for_test() as instance:
        result = materialize_partition(instance, "tree")
        assert result.success
        materializations = {
            m.asset_key.to_user_string(): m
            for m in result.asset_materializations_for_node("samples")
        }
        metadata = materializations["samples"].metadata
        assert metadata["added"].value == metadata["found"].value > 0
        assert metadata["quarantined"].value == 0
        checks = result.get_asset_check_evaluations()
        assert {c.check_name for c in checks} == {
            "sample_ids_are_unique",
            "row_count_equals_files_minus_quarantined",
        }
        assert all(c.passed for c in checks)
        again = materialize_partition(instance, "tree")
        added = again.asset_materializations_for_node("samples")[0].metadata["added"].value
        assert added == 0


def sense(instance: DagsterInstance, cursor: str | None = None) -> SensorResult:
    """One evaluation of the new-dataset sensor with the deployment's resources."""
    return new_dataset_sensor(
        build_sensor_context(instance=instance, resources=RESOURCES, cursor=cursor)
    )


def test_sensor_adds_each_new_dataset_once(sources: Path) -> None:
    with instance_for_test() as instance:
        first = sense(instance)
        assert [r.partition_key for r in first.run_requests] == ["tree"]
        assert first.dynamic_partitions_requests[0].partition_keys == ["tree"]
        assert json.loads(first.cursor) == ["tree"]
        (sources / "more.yaml").write_text(f"name: more\nuri: {FIXTURES / 'geotiff'}\n")
        second = sense(instance, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["more"]
        third = sense(instance, second.cursor)
        assert third.run_requests == []


def test_sensor_notices_a_new_folder_under_the_watched_root(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = tmp_path / "incoming"
    watched.mkdir()
    config = sources.parent / "config.yaml"
    config.write_text(config.read_text().replace("watch_root: null", f"watch_root: {watched}"))
    with instance_for_test() as instance:
        cursor = sense(instance).cursor
        (watched / "new_crops").mkdir()
        result = sense(instance, cursor)
        assert [r.partition_key for r in result.run_requests] == ["new_crops"]


def test_schedules_take_their_cron_from_config_and_compose_none_at_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import orchestration.schedules

    config = load_config(["rescan_cron='0 5 * * *'", "hashing.retrain_cron='0 6 * * 1'"])
    crons = {s.name: s.cron_schedule for s in orchestration.schedules.build_schedules(config)}
    assert crons == {"rescan_schedule": "0 5 * * *", "hash_retraining_schedule": "0 6 * * 1"}

    def compose(*args: object, **kwargs: object) -> None:
        raise AssertionError("orchestration.schedules composed the configuration at import")

    monkeypatch.setattr("samplehub.config.load_config", compose)
    importlib.reload(orchestration.schedules)


def test_rescan_schedule_requests_every_partition() -> None:
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, ["a", "b"])
        when = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
        context = build_schedule_context(instance=instance, scheduled_execution_time=when)
        requests = list(defs.resolve_schedule_def("rescan_schedule")(context))
        assert sorted(r.partition_key for r in requests) == ["a", "b"]
        assert requests[0].run_key == "rescan-a-202611230300"


def test_label_graph_merges_labelled_partitions_and_skips_unlabelled(
    sources: Path, shared_data: Path
) -> None:
    """Needs ``shared_data`` for the OSM Semantic Network the merge embeds labels with."""
    (sources / "scenes.yaml").write_text(f"name: scenes\nuri: {FIXTURES / 'geotiff'}\n")
    with instance_for_test() as instance:
        assert materialize_partition(instance, "tree").success
        assert materialize_partition(instance, "scenes").success
        result = defs.resolve_job_def("build_label_graph").execute_in_process(instance=instance)
        assert result.success
        metadata = result.asset_materializations_for_node("label_graph")[0].metadata
        assert metadata["datasets"].value == ["tree"]
        assert metadata["unlabelled_datasets_skipped"].value == ["scenes"]
        assert metadata["labels"].value > 51
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"is_a_acyclic": True, "every_dataset_label_maps": True}
