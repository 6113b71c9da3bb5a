"""A fault-injecting HTTP proxy in front of a loopback S3 or MLflow server.

Every request is forwarded to the server unless the proxy's seeded plan injects a fault
first: an HTTP 500 ``InternalError``, a 503 ``SlowDown`` (S3's throttling answer), a
connection reset, or a stall longer than the client's timeout. ``down()`` makes it answer
every request with a reset, as a server that died would; ``up()`` brings it back.

Used by ``tests/samplehub/sources/test_s3_faults.py``,
``tests/samplehub/test_mlflow_faults.py`` and ``bench/reliability.py``.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("error_500", "slowdown_503", "reset", "stall")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


@dataclass
class FaultPlan:
    """Which fault, if any, each request gets.

    Attributes:
        rate: probability that a request gets a fault.
        kinds: the faults drawn from, uniformly.
        stall_s: how long a stall holds the request before dropping it.
        seed: seeds the draws.
        dead: every request gets a reset (the server is down).
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("error_500", "slowdown_503", "reset")
    stall_s: float = 20.0
    seed: int = 0
    dead: bool = False
    die_after: int | None = None
    """Go down (``dead``) once this many requests were forwarded."""
    die_on: str | None = None
    """Go down when a request whose ``METHOD path`` starts with this arrives (it gets the
    reset, as do all after it)."""
    injected: Counter[str] = field(default_factory=Counter)
    forwarded: int = 0
    requests: list[str] = field(default_factory=list)
    """``METHOD path`` of every request forwarded, in order."""
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, request: str = "") -> str | None:
        """The fault for ``request`` (None: forward it); counted."""
        with self._lock:
            if self.die_after is not None and self.forwarded >= self.die_after:
                self.dead, self.die_after = True, None
            if self.die_on is not None and request.startswith(self.die_on):
                self.dead, self.die_on = True, None
            if self.dead:
                fault: str | None = "reset"
            elif self._rng.random() < self.rate:
                fault = self._rng.choice(self.kinds)
            else:
                fault = None
            if fault is None:
                self.forwarded += 1
                self.requests.append(request)
            else:
                self.injected[fault] += 1
            return fault


def error_body(code: str, message: str) -> bytes:
    """An S3 error document."""
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


class FaultProxy:
    """The proxy, on a free loopback port, forwarding to ``upstream``."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.plan = plan or FaultPlan()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # a quiet console
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.plan.draw(f"{self.command} {self.path.split('?')[0]}")
                if fault == "reset" or fault == "stall":
                    if fault == "stall":
                        time.sleep(proxy.plan.stall_s)
                    # RST instead of FIN: the client sees a connection reset, not a reply.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault in ("error_500", "slowdown_503"):
                    status, code = ((500, "InternalError") if fault == "error_500"
                                    else (503, "SlowDown"))
                    payload = error_body(code, f"injected by the fault proxy ({fault})")
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.forward(body)

            def forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(proxy.upstream.hostname,
                                                      proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                reply = upstream.getresponse()
                payload = reply.read()
                self.send_response(reply.status, reply.reason)
                for key, value in reply.getheaders():
                    if key.lower() in HOP_BY_HOP:
                        continue
                    if key.lower() != "content-length" or self.command == "HEAD":
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = handle_one

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a stall or a reset: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def down(self) -> None:
        """Answer every request with a connection reset, as a dead server would."""
        self.plan.dead = True

    def up(self) -> None:
        """Forward again (faults per the plan's rate)."""
        self.plan.dead = False


def s3_overrides(endpoint: str, bucket: str, credentials: dict[str, str], retries: int,
                 budget_s: float) -> list[str]:
    """Hydra overrides putting the catalog and the store in ``bucket`` behind ``endpoint``."""
    return [
        "storage=s3", f"storage.catalog_uri=s3://{bucket}/catalog",
        f"storage.store_uri=s3://{bucket}/zarr",
        f"+storage.storage_options.AWS_ACCESS_KEY_ID={credentials['key']}",
        f"+storage.storage_options.AWS_SECRET_ACCESS_KEY={credentials['secret']}",
        f"storage.storage_options.AWS_ENDPOINT_URL={endpoint}",
        f"+storage.storage_options.max_retries={retries}",
        f"+storage.storage_options.retry_timeout={budget_s}",
        "+storage.storage_options.timeout=5",
    ]


def fault_scenarios(images: Path, home: Path, rate: float, die_at: list[float],
                    seed: int = 0) -> dict[str, Any]:
    """Ingest ``images`` over a faulty S3, then over one that dies at each point of ``die_at``.

    ``die_at`` holds fractions of the requests the flaky run made: the server dies after
    that many forwarded requests.

    Starts moto's S3 server on loopback for the duration. Returns the ``s3_faults`` row:
    faults injected and absorbed by retries in the flaky run, and per death whether the
    ingest failed with one :class:`~samplehub.errors.StorageError`, left anything
    half-committed (a finding the repository check cannot reclaim), and completed on the
    next run.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    from samplehub.errors import StorageError
    from samplehub.fsck import check_repository
    from samplehub.repository import Repository
    from samplehub.sources import SourceSpec

    credentials = {"key": "fault-key", "secret": "fault-secret"}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=credentials["key"],
                          aws_secret_access_key=credentials["secret"])
    files = sum(1 for p in images.rglob("*") if p.is_file())
    spec = SourceSpec(name="faults", uri=str(images))
    row: dict[str, Any] = {"files": files, "rate": rate}
    try:
        client.create_bucket(Bucket="flaky")
        with FaultProxy(endpoint, FaultPlan(rate=rate, seed=seed)) as proxy:
            repo = Repository.open([*s3_overrides(
                proxy.endpoint_url, "flaky", credentials, retries=10, budget_s=60), f"home={home}"])
            started = time.perf_counter()
            report = repo.ingest(spec)
            row["flaky"] = {
                "requests": proxy.plan.forwarded + sum(proxy.plan.injected.values()),
                "injected": dict(proxy.plan.injected),
                "completed": report.added == files,
                "fsck_clean": check_repository(repo).clean,
                "seconds": round(time.perf_counter() - started, 1),
            }
        deaths = []
        die_after = [int(f * proxy.plan.forwarded) for f in die_at]
        for i, after in enumerate(die_after):
            bucket = f"dies-{i}"
            client.create_bucket(Bucket=bucket)
            with FaultProxy(endpoint, FaultPlan(die_after=after)) as proxy:
                overrides = [*s3_overrides(proxy.endpoint_url, bucket, credentials, retries=2,
                                           budget_s=5), f"home={home}"]
                death: dict[str, Any] = {"die_after_requests": after}
                try:
                    Repository.open(overrides).ingest(spec)
                    death["failed"] = "no (finished before the server died)"
                except StorageError as exc:
                    death["failed"] = "StorageError"
                    death["message_has_secret"] = credentials["secret"] in str(exc)
                except Exception as exc:  # a failure that is not the one clear error
                    death["failed"] = type(exc).__name__
                proxy.up()
                repo = Repository.open(overrides)
                death["committed"] = len(repo.catalog.sample_ids("faults"))
                findings = check_repository(repo).findings
                death["reclaimable"] = sum(f.reclaimable for f in findings)
                death["half_committed"] = sum(not f.reclaimable for f in findings)
                death["completed_after"] = repo.ingest(spec).total == files
                death["fsck_clean_after"] = check_repository(repo).clean
            deaths.append(death)
        row["deaths"] = deaths
    finally:
        server.stop()
    flaky = row["flaky"]
    row["injected"] = sum(flaky["injected"].values()) + len(die_after)
    row["retried"] = sum(flaky["injected"].values()) if flaky["completed"] else 0
    row["failed_cleanly"] = sum(d["failed"] == "StorageError" and not d["message_has_secret"]
                                for d in deaths)
    row["half_committed"] = sum(d["half_committed"] for d in deaths)
    return row
