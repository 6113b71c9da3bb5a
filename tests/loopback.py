"""Real servers on loopback for the integration tests: PostgreSQL, an MLflow tracking server,
a Spark standalone cluster and ``samplehub serve``.

PostgreSQL: CI installs Debian's ``postgresql`` package (``.ci/run``); the server binaries
run directly (as the ``postgres`` user when run as root, since PostgreSQL refuses to run as
root). MLflow: ``mlflow server`` from this venv with a PostgreSQL backend store. Spark: the
standalone master and workers from the pyspark wheel (Java 17), workers running this venv's
python. SampleHub:
``samplehub serve`` from this venv with its uvicorn worker processes. Each server listens on
127.0.0.1 on a free port and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a server started with ``start_new_session=True`` and every process it forked."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError):  # a worker that outlived the server
        os.killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn in a thread on a free loopback port; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server's bin folder; skips when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


@dataclass(frozen=True)
class Postgres:
    """A running throwaway PostgreSQL cluster (user ``dagster``, trust auth, loopback)."""

    bindir: Path
    port: int
    prefix: tuple[str, ...]
    data: Path
    host: str = "127.0.0.1"
    user: str = "dagster"

    def url(self, db: str = "dagster") -> str:
        """``postgresql://`` URL of database ``db``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}"

    def create_database(self, db: str) -> str:
        """Create database ``db`` and return its URL."""
        _run(self.prefix, str(self.bindir / "createdb"), "-h", self.host, "-p", str(self.port),
             "-U", self.user, db)
        return self.url(db)

    def start(self) -> None:
        """Start the server on its port and data folder (waits until it accepts connections)."""
        _run(self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-l",
             str(self.data.parent / "log"), "-o",
             f"-p {self.port} -k {self.data.parent} -c listen_addresses={self.host}", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` cuts every client off as a crash would."""
        _run(self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop")


def _run(prefix: tuple[str, ...], *args: str) -> None:
    subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL cluster on 127.0.0.1 with database ``dagster``, stopped and deleted after."""
    bindir = postgres_bin()
    base = Path(tempfile.mkdtemp(prefix="samplehub-pg-", dir="/tmp"))
    base.chmod(0o755)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ("runuser", "-u", "postgres", "--")
    data = base / "data"
    _run(prefix, str(bindir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust",
         "-E", "UTF8")
    server = Postgres(bindir, free_port(), prefix, data)
    server.start()
    try:
        server.create_database("dagster")
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(
    backend_store_uri: str, artifacts: Path, timeout: float = 180.0
) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (one worker, artifacts proxied); yields its URL.

    Waits at most ``timeout`` seconds for ``/health`` (the first start migrates the
    backend store's schema), then stops the server's process group by its pid.
    """
    port = free_port()
    log = artifacts.parent / "mlflow-server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1", "--backend-store-uri", backend_store_uri,
             "--artifacts-destination", str(artifacts)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({process.returncode}):\n"
                                   f"{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not up after {timeout} s:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(process)


@dataclass(frozen=True)
class SampleHubServer:
    """A running ``samplehub serve``: its URL, its supervisor process and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def samplehub_server(
    overrides: Sequence[str], workers: int, log: Path, env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[SampleHubServer]:
    """``samplehub serve --workers N`` on 127.0.0.1 until every worker started.

    Args:
        overrides: Hydra overrides (``--set``), e.g. ``home=...``.
        workers: uvicorn worker processes.
        log: where the server's output goes.
        env: the server's environment (default: this process's).
        timeout: seconds to wait for every worker's "Application startup complete".
    """
    port = free_port()
    command = [str(Path(sys.executable).parent / "samplehub"), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers),
               *[arg for o in overrides for arg in ("--set", o)]]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=None if env is None else dict(env))
    try:
        deadline = time.monotonic() + timeout
        while log.read_text().count("Application startup complete") < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"samplehub serve did not start {workers} workers:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield SampleHubServer(f"http://127.0.0.1:{port}", process, log)
    finally:
        stop_group(process)


def spark_class() -> Path:
    """The pyspark wheel's ``bin/spark-class``; skips when pyspark or Java is missing."""
    if shutil.which("java") is None:
        pytest.skip("Java not installed (apt-get install openjdk-17-jre-headless)")
    pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (samplehub[spark])")
    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def spark_alive_workers(webui_url: str) -> int:
    """How many workers the standalone master at ``webui_url`` lists as ALIVE (its /json/)."""
    with urllib.request.urlopen(f"{webui_url}/json/", timeout=2) as response:
        state = json.load(response)
    return sum(worker["state"] == "ALIVE" for worker in state["workers"])


@contextlib.contextmanager
def spark_cluster(workers: int = 2, cores: int = 1, memory: str = "1g",
                  timeout: float = 120.0) -> Iterator[str]:
    """A Spark standalone master and ``workers`` workers on 127.0.0.1 free ports.

    Each worker offers ``cores`` cores and ``memory`` to executors, which run this venv's
    python. Yields the master's ``spark://127.0.0.1:PORT`` URL once every worker is registered
    ALIVE, then stops each process group by its pid.
    """
    command = str(spark_class())
    base = Path(tempfile.mkdtemp(prefix="samplehub-spark-", dir="/tmp"))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(base), "SPARK_NO_DAEMONIZE": "1"}
    port, webui = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> None:
        with (base / f"{name}.log").open("w") as out:
            processes.append(subprocess.Popen([command, *args], stdout=out,
                                              stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True))

    try:
        launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
               "--port", str(port), "--webui-port", str(webui))
        for i in range(workers):
            (base / f"work-{i}").mkdir()
            launch(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                   "--webui-port", str(free_port()), "--cores", str(cores), "--memory", memory,
                   "--work-dir", str(base / f"work-{i}"), master)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if spark_alive_workers(f"http://127.0.0.1:{webui}") == workers:
                    break
            exited = [p.args[1] for p in processes if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                logs = "".join(f"--- {log.name}\n{log.read_text()[-1500:]}"
                               for log in sorted(base.glob("*.log")))
                raise RuntimeError(f"Spark cluster at {master} did not register {workers} ALIVE "
                                   f"workers (exited: {exited}):\n{logs}")
            time.sleep(0.5)
        yield master
    finally:
        for process in reversed(processes):
            stop_group(process)
        shutil.rmtree(base, ignore_errors=True)
