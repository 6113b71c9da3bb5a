"""The Dagster instance on a real PostgreSQL server started on loopback (infra/postgres).

CI installs Debian's ``postgresql`` package; the test runs the server binaries directly
(as the ``postgres`` user when run as root, since PostgreSQL refuses to run as root).
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from assets.partitions import dataset_partitions
from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data"


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, stopped and deleted afterwards."""
    bindir = postgres_bin()
    base = Path(tempfile.mkdtemp(prefix="samplehub-pg-", dir="/tmp"))
    base.chmod(0o755)
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = base / "data"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-l",
        str(base / "log"),
        "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        run(
            str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster"
        )
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.integration
def test_partition_materializes_through_the_postgres_instance(
    home: Path, postgres: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import psycopg2

    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    dagster_home = tmp_path / "dagster_pg"
    dagster_home.mkdir()
    shutil.copy(REPO / "infra" / "postgres" / "dagster.yaml", dagster_home / "dagster.yaml")
    conf = tmp_path / "sources"
    conf.mkdir()
    (conf / "tree.yaml").write_text(f"name: tree\nuri: {FIXTURES / 'folder_tree'}\n")

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
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

    with psycopg2.connect(
        host="127.0.0.1", port=int(postgres["DAGSTER_PG_PORT"]), user="dagster", dbname="dagster"
    ) as connection:
        cursor = connection.cursor()
        cursor.execute("select status from runs where run_id = %s", (result.run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute(
            "select count(*) from event_logs where run_id = %s and dagster_event_type = "
            "'ASSET_MATERIALIZATION'",
            (result.run_id,),
        )
        assert cursor.fetchone()[0] == 2
