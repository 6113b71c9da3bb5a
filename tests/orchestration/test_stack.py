"""``infra/stack.py``: the server stack on loopback, and ``make demo`` on it (``profile=stack``).

``infra/stack.py start`` runs into a temporary state folder on free ports: PostgreSQL
(Debian's binaries), moto's S3 server, ``mlflow server`` on PostgreSQL, a Spark standalone
master and worker, ``dagster-webserver`` and ``dagster-daemon`` on the PostgreSQL instance.
The tests prove each answers, then run the demo (``python -m orchestration.demo``, what
``make demo`` runs) with the stack's ``stack.env`` on a small real subset of
``../shared/data`` (4 UC Merced images per class and their multi-label rows): its runs land
in the PostgreSQL instance, its catalog in the S3 bucket, its models on the MLflow server and
its Spark jobs on the standalone master. The daemon runs its sensors meanwhile, as in a
deployment: it ingests the same sources on its own, and the instance's pool serializes its
heavy steps with the demo's. Last, ``stop`` ends every process group.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loopback import free_port, postgres_bin, spark_class

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()  # as tests/conftest.py finds it
STACK = REPO / "infra" / "stack.py"
PORTS = ("postgres", "s3", "mlflow", "spark", "spark-ui", "spark-worker-ui", "dagster")
SERVICES = ("postgres", "s3", "mlflow", "spark-master", "spark-worker", "dagster-webserver",
            "dagster-daemon")
pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class RunningStack:
    """A stack started by ``infra/stack.py start``: its state folder, ports and stack.env."""

    state: Path
    ports: dict[str, int]
    env: dict[str, str]
    start_output: str
    start_seconds: float

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """``infra/stack.py <command>`` on this state folder."""
        return subprocess.run([sys.executable, str(STACK), command, "--state", str(self.state)],
                              capture_output=True, text=True, timeout=180, env=self.env)

    def pids(self) -> dict[str, int]:
        """The pid file of every service."""
        return {path.stem: int(path.read_text()) for path in (self.state / "pids").glob("*.pid")}

    def s3(self) -> Any:
        """A boto3 client of the stack's S3 server, with stack.env's credentials."""
        import boto3

        return boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"],
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                            region_name=self.env["AWS_REGION"])

    def get_json(self, url: str) -> object:
        """GET ``url`` and parse its JSON."""
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)


def small_real_data(root: Path) -> Path:
    """The demo's folders with a few real samples each, from ``../shared/data``."""
    images = root / "ucmerced" / "Images"
    for folder in sorted((SHARED_DATA / "ucmerced" / "Images").iterdir()):
        (images / folder.name).mkdir(parents=True)
        for path in sorted(folder.iterdir())[:4]:
            shutil.copy(path, images / folder.name / path.name)
    kept = {path.stem for path in images.rglob("*.jpg")}
    manifest = SHARED_DATA / "ucmerced_multilabel" / "LandUse_Multilabeled.txt"
    header, *rows = manifest.read_bytes().split(b"\r\n")
    (root / "ucmerced_multilabel").mkdir()
    (root / "ucmerced_multilabel" / manifest.name).write_bytes(b"\r\n".join(
        [header, *(row for row in rows if row.split(b"\t")[0].decode() in kept), b""]))
    (root / "osm_semantic_network").symlink_to(SHARED_DATA / "osm_semantic_network")
    return root


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a process that is not a zombie."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and int(pgrp) == pgid:
                return True
    return False


def pgid(pid: int) -> int | None:
    """The process group of ``pid``; None if it has gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack on free ports with a temporary home; the demo's data if ../shared is here."""
    postgres_bin()
    spark_class()
    base = tmp_path_factory.mktemp("stack")
    data = small_real_data(base / "data") if SHARED_DATA.is_dir() else base / "no-data"
    data.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SAMPLEHUB_", "DAGSTER_", "MLFLOW_", "AWS_", "SPARK_"))}
    env |= {"SAMPLEHUB_HOME": str(base / "home"), "SAMPLEHUB_DATA": str(data),
            "HF_HUB_OFFLINE": "1"}
    ports = {name: free_port() for name in PORTS}
    state = base / "state"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(STACK), "start", "--state", str(state),
         *[arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]],
        capture_output=True, text=True, env=env, timeout=600)
    seconds = time.monotonic() - started
    running = RunningStack(state, ports, env, result.stdout, seconds)
    try:
        assert result.returncode == 0, f"start failed:\n{result.stdout}\n{result.stderr}"
        for line in (state / "stack.env").read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                running.env[name] = shlex.split(value)[0]
        yield running
    finally:
        running.run("stop")
        shutil.rmtree((state / "postgres").resolve(), ignore_errors=True)  # /var/tmp as root


def test_start_names_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(STACK), "start", "--state", str(tmp_path / "state"),
             "--mlflow-port", str(port)], capture_output=True, text=True, timeout=60,
            env={**os.environ, "SAMPLEHUB_HOME": str(tmp_path / "home")})
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (mlflow) is taken" in result.stderr
    assert "--mlflow-port" in result.stderr
    assert not (tmp_path / "state" / "pids").exists(), "nothing started"


def test_every_service_answers_on_loopback(stack: RunningStack) -> None:
    import psutil
    import psycopg2

    *services, env_line = stack.start_output.splitlines()
    assert sorted(line.split()[0] for line in services) == sorted(SERVICES)
    assert set(stack.pids()) == set(SERVICES) and env_line.endswith("stack.env")
    env = stack.env
    assert env["SAMPLEHUB_OVERRIDES"] == "profile=stack"

    with psycopg2.connect(env["DAGSTER_POSTGRES_URL"]) as connection:
        cursor = connection.cursor()
        cursor.execute("select datname from pg_database")
        assert {"dagster", "mlflow"} <= {row[0] for row in cursor.fetchall()}
        # dagster-daemon's heartbeats, written into the PostgreSQL instance.
        cursor.execute("select daemon_type, timestamp from daemon_heartbeats")
        beats = dict(cursor.fetchall())
    assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "ASSET"} <= set(beats)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert all(now - beat < datetime.timedelta(minutes=2) for beat in beats.values())

    s3 = stack.s3()
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["samplehub"]

    with urllib.request.urlopen(f"{env['MLFLOW_TRACKING_URI']}/health", timeout=10) as health:
        assert health.read() == b"OK"

    master = stack.get_json(f"http://127.0.0.1:{stack.ports['spark-ui']}/json/")
    assert isinstance(master, dict) and master["url"] == env["SPARK_MASTER_URL"]
    assert [(w["host"], w["state"]) for w in master["workers"]] == [("127.0.0.1", "ALIVE")]

    info = stack.get_json(f"http://127.0.0.1:{stack.ports['dagster']}/server_info")
    assert isinstance(info, dict) and info["dagster_webserver_version"]

    # Loopback only: every TCP socket that a process of the stack listens on (Java's are
    # IPv6 sockets bound to the IPv4-mapped 127.0.0.1).
    groups = set(stack.pids().values())
    listening = {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.pid and pgid(c.pid) in groups}
    assert {port for _, port in listening} >= set(stack.ports.values())
    assert {ip.removeprefix("::ffff:") for ip, _ in listening} == {"127.0.0.1"}, listening

    status = stack.run("status")
    assert status.returncode == 0 and "not answering" not in status.stdout


def test_the_demo_runs_on_the_stack(stack: RunningStack, shared_data: Path) -> None:
    import psycopg2
    from mlflow import MlflowClient

    def runs() -> list[tuple[str, str | None, str]]:
        with psycopg2.connect(stack.env["DAGSTER_POSTGRES_URL"]) as connection:
            cursor = connection.cursor()
            cursor.execute("select pipeline_name, partition, status from runs order by id")
            return cursor.fetchall()

    log = stack.state / "logs" / "demo.log"
    started = time.monotonic()
    with log.open("w") as out:
        try:
            demo = subprocess.run([sys.executable, "-m", "orchestration.demo"], cwd=REPO,
                                  env=stack.env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=780)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo still running after 780 s; runs: {runs()}\n"
                        f"{log.read_text()[-3000:]}")
    seconds = time.monotonic() - started
    output = log.read_text()
    assert demo.returncode == 0, f"demo failed; runs: {runs()}\n{output[-5000:]}"
    assert "ucmerced_multilabel" in output and "supplementary samples" in output
    print(f"stack start {stack.start_seconds:.0f} s, demo {seconds:.0f} s")

    home = Path(stack.env["SAMPLEHUB_HOME"])
    runs_now = runs()
    succeeded = {(job, partition) for job, partition, status in runs_now if status == "SUCCESS"}
    for dataset in ("ucmerced", "ucmerced_multilabel"):
        assert {("ingest_dataset", dataset), ("compute_features", dataset)} <= succeeded
    assert {"build_label_graph", "index_features", "train_hir_models"} <= {
        job for job, _ in succeeded}, runs_now
    assert ("compute_landcover_stats", "ucmerced") in succeeded
    assert (home / "dagster" / "dagster.yaml").read_text().count("postgres_url") == 1

    s3 = stack.s3()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="samplehub")
            for o in page.get("Contents", [])]
    assert any(key.startswith("catalog/samples/_delta_log/") for key in keys)
    assert any(key.startswith("zarr/ucmerced.zarr/") for key in keys)
    assert not (home / "catalog").exists() and not (home / "zarr").exists(), "nothing local"

    client = MlflowClient(stack.env["MLFLOW_TRACKING_URI"])
    for model in ("tkanet", "esformer"):
        version = client.get_model_version_by_alias(model, "champion")
        assert client.get_run(version.run_id).info.status == "FINISHED"

    master = stack.get_json(f"http://127.0.0.1:{stack.ports['spark-ui']}/json/")
    assert isinstance(master, dict)
    apps = master["activeapps"] + master["completedapps"]
    assert "samplehub" in {app["name"] for app in apps}, "the executor ran on the cluster"


def test_stop_ends_every_process_group_and_is_idempotent(stack: RunningStack) -> None:
    pids = stack.pids()
    assert all(group_alive(pid) for pid in pids.values())
    stopped = stack.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert [line.split()[0] for line in stopped.stdout.splitlines()] == list(reversed(SERVICES))
    assert not any(group_alive(pid) for pid in pids.values())
    assert not list((stack.state / "pids").glob("*.pid"))
    again = stack.run("stop")
    assert again.returncode == 0 and again.stdout == ""
    assert stack.run("status").returncode == 3
