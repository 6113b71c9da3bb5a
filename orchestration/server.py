"""The Dagster webserver and daemon as one subprocess (``dg dev``) on loopback.

Used by the daemon integration test, ``bench/automation.py`` and anyone who wants the UI
over a SampleHub home from Python: :class:`DevServer` starts ``dg dev`` with a given
``DAGSTER_HOME`` and environment, waits until its GraphQL endpoint answers, talks to it as
the UI does (launch a partition backfill), and stops the whole process group by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration.definitions import defs

T = TypeVar("T")
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
          DagsterRunStatus.STARTED]

REPO = Path(__file__).resolve().parents[1]

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidSubsetError { message }
  }
}
"""


def poll(what: str, probe: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    """Call ``probe`` until it returns a value other than None, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def busy(instance: DagsterInstance) -> bool:
    """Whether any run is queued, starting or running."""
    return bool(instance.get_runs(RunsFilter(statuses=ACTIVE), limit=1))


def materialization_counts(
    instance: DagsterInstance, after: float = 0.0
) -> Counter[tuple[str, str]]:
    """``(asset, partition or "")`` -> materializations stored after the timestamp ``after``."""
    counts: Counter[tuple[str, str]] = Counter()
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        for record in instance.fetch_materializations(AssetKey(key.path), limit=10_000).records:
            if record.timestamp > after:
                counts[(key.to_user_string(), record.partition_key or "")] += 1
    return counts


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    """``dg dev`` over ``orchestration.definitions`` with its own ``DAGSTER_HOME``.

    Attributes:
        dagster_home: the instance folder (holds ``dagster.yaml``).
        env: extra environment for the server and the runs it launches
            (``SAMPLEHUB_HOME``, ``SAMPLEHUB_CONF``, ...).
        log_path: where the server's output goes (the console stays quiet).
    """

    dagster_home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The webserver's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> DevServer:
        """Start ``dg dev`` and wait until the webserver serves GraphQL."""
        env = {**os.environ, **self.env, "DAGSTER_HOME": str(self.dagster_home)}
        log = open(self.log_path or self.dagster_home / "dg-dev.log", "ab")
        dg = Path(sys.executable).with_name("dg")
        self.process = subprocess.Popen(
            [str(dg), "dev", "-m", "orchestration.definitions", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dg dev exited with {self.process.returncode}; see {log.name}")
            try:
                if self.graphql("{ version }").get("version"):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"dg dev did not answer on {self.url} within {timeout:.0f} s")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL query; returns ``data`` (raises on GraphQL errors)."""
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
            timeout=30.0,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def launch_asset_backfill(self, assets: list[str], partitions: list[str]) -> str:
        """Launch a partition backfill of ``assets`` as the UI's "Materialize" dialog does."""
        params = {
            "partitionNames": partitions,
            "assetSelection": [{"path": [name]} for name in assets],
        }
        result = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {result}")
        return str(result["backfillId"])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server, its daemon and their runs: SIGTERM to the process group by pid."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)

    def __enter__(self) -> DevServer:
        """Start the server; ``with DevServer(...) as server:`` stops it on leaving."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server, whether or not the block raised."""
        self.stop()
