"""The Dagster instance on a real PostgreSQL server started on loopback.

``instance=postgres`` makes :func:`samplehub.instance.write_instance_yaml` write the
``dagster.yaml`` that ``DagsterInstance`` loads; the server is the session's ``postgres``
fixture (``tests/loopback.py``; CI installs Debian's ``postgresql`` package).
"""

from pathlib import Path

import pytest
from dagster import DagsterInstance
from loopback import Postgres

from assets.partitions import dataset_partitions
from orchestration.definitions import defs
from samplehub.config import load_config
from samplehub.instance import write_instance_yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data"


@pytest.mark.integration
def test_partition_materializes_through_the_postgres_instance(
    home: Path, postgres: Postgres, tmp_path: Path
) -> None:
    import psycopg2

    dagster_home = tmp_path / "dagster_pg"
    config = load_config(["instance=postgres", f"instance.postgres_url={postgres.url()}"])
    written = write_instance_yaml(config, dagster_home)
    assert written == dagster_home / "dagster.yaml"
    conf = tmp_path / "sources"
    conf.mkdir()
    (conf / "tree.yaml").write_text(f"name: tree\nuri: {FIXTURES / 'folder_tree'}\n")

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        assert [type(s).__name__ for s in storages] == [
            "PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"
        ]
        instance.add_dynamic_partitions(dataset_partitions.name, ["tree"])
        result = defs.resolve_job_def("ingest_dataset").execute_in_process(
            partition_key="tree",
            instance=instance,
            run_config={
                "resources": {"samplehub": {"config": {"overrides": [f"sources_dir={conf}"]}}}
            },
        )
        assert result.success
        assert instance.get_dynamic_partitions(dataset_partitions.name) == ["tree"]

    with psycopg2.connect(postgres.url()) as connection:
        cursor = connection.cursor()
        cursor.execute("select status from runs where run_id = %s", (result.run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute(
            "select count(*) from event_logs where run_id = %s and dagster_event_type = "
            "'ASSET_MATERIALIZATION'",
            (result.run_id,),
        )
        assert cursor.fetchone()[0] == 2
