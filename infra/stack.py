"""The server stack on loopback, from packages: ``python infra/stack.py start|stop|status``.

``profile=stack`` (``conf/profile/stack.yaml``) runs SampleHub on these servers instead of the
embedded defaults; ``make stack`` starts them and ``make stack-stop`` stops them.

Services, in start order (default ports in brackets):

* ``postgres`` [5432]: Debian's PostgreSQL server binaries; databases ``dagster`` (Dagster's
  instance) and ``mlflow`` (MLflow's backend store).
* ``s3`` [9000]: moto's S3 server, in memory (objects go when it stops); a deployment with
  MinIO points ``AWS_ENDPOINT_URL`` at MinIO instead.
* ``mlflow`` [5000]: ``mlflow server``, artifacts proxied to ``<state>/mlflow-artifacts``.
* ``spark-master`` [7077, web UI 8080] and ``spark-worker`` [web UI 8081]: Spark standalone
  from the pyspark wheel (Java 17); executors run this venv's python, and drivers read
  ``<state>/spark-conf/spark-defaults.conf`` (``SPARK_CONF_DIR``).
* ``dagster-webserver`` [3000] and ``dagster-daemon`` over ``infra/workspace.yaml``.

Each service runs as its own process group on 127.0.0.1, its output in
``<state>/logs/<service>.log`` and its pid in ``<state>/pids/<service>.pid``; the state
folder defaults to ``<SAMPLEHUB_HOME or ~/.samplehub>/stack`` (``--state``). ``start``
waits until each service answers, prints one line per service, writes ``dagster.yaml`` for
``instance=postgres`` into ``<home>/dagster``, creates the bucket of ``storage=s3`` and
writes ``<state>/stack.env`` for ``source``. ``stop`` signals each process group by its
pid (idempotent). Ports: ``--<name>-port`` or ``SAMPLEHUB_STACK_<NAME>_PORT``.

PostgreSQL trusts every connection from 127.0.0.1 (user ``samplehub``, no password): a
loopback development stack, not a shared server. Run as root, the server runs as the
``postgres`` user with its data in ``/var/tmp`` (PostgreSQL refuses root, and a home folder
is usually closed to other users).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PORTS = {"postgres": 5432, "s3": 9000, "mlflow": 5000, "spark": 7077, "spark-ui": 8080,
         "spark-worker-ui": 8081, "dagster": 3000}
SERVICES = ("postgres", "s3", "mlflow", "spark-master", "spark-worker", "dagster-webserver",
            "dagster-daemon")
PG_USER = "samplehub"
# moto accepts any credentials; every S3 client of the stack gets these from stack.env.
S3_KEY, S3_SECRET = "samplehub", "samplehub-secret"
# How applications share the standalone cluster, read by every driver through SPARK_CONF_DIR.
# Without it an application holds all the worker's cores for its lifetime, so `make demo`'s
# process (its session outlives a run) starved the daemon's run, which held the instance's
# samplehub_heavy pool slot that the demo's next step waited for: a deadlock. Executors of
# one core, given back after 5 s idle (dynamic allocation; shuffle tracking, as there is no
# external shuffle service), and after 15 s when they hold shuffle or cached blocks (by
# default never, until the driver drops the shuffle, which a long-lived session may not).
# The master's REST submission port (6066) stays closed.
SPARK_DEFAULTS = """\
spark.executor.cores 1
spark.executor.memory 1g
spark.dynamicAllocation.enabled true
spark.dynamicAllocation.shuffleTracking.enabled true
spark.dynamicAllocation.executorIdleTimeout 5s
spark.dynamicAllocation.shuffleTracking.timeout 15s
spark.dynamicAllocation.cachedExecutorIdleTimeout 15s
spark.master.rest.enabled false
"""
DAEMON_HEALTH = "{instance {daemonHealth {allDaemonStatuses {daemonType required healthy}}}}"


class StackError(RuntimeError):
    """A service that cannot start, with what to do about it."""


@dataclass(frozen=True)
class Service:
    """One server: how to run it, its URL and how to tell that it answers."""

    name: str
    command: list[str]
    url: str
    ready: Callable[[], bool]
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the environment of ``start``, which holds ``stack.env``'s by then."""
    user: str | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    signal_group: bool = True
    """Signal the whole process group, or only its leader (PostgreSQL: SIGINT to the
    postmaster is a fast shutdown that stops its children in order)."""


@dataclass
class Stack:
    """The stack of one state folder: ports, paths, URLs and the services built from them."""

    state: Path
    ports: dict[str, int]
    home: Path
    worker_cores: int
    worker_memory: str

    @classmethod
    def load(cls, state: Path) -> Stack | None:
        """The stack that ``start`` recorded in ``state/stack.json``; None if never started."""
        path = state / "stack.json"
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        return cls(state, saved["ports"], Path(saved["home"]), saved["worker_cores"],
                   saved["worker_memory"])

    def save(self) -> None:
        """Record ports and home so that ``status`` and ``stop`` find the same stack."""
        (self.state / "stack.json").write_text(json.dumps({
            "ports": self.ports, "home": str(self.home), "worker_cores": self.worker_cores,
            "worker_memory": self.worker_memory}, indent=1) + "\n")

    def pid_file(self, name: str) -> Path:
        """Where the pid of ``name``'s process group leader is kept."""
        return self.state / "pids" / f"{name}.pid"

    def log(self, name: str) -> Path:
        """Where ``name``'s output goes."""
        return self.state / "logs" / f"{name}.log"

    @property
    def postgres_data(self) -> Path:
        """The cluster's data folder; as root, one the ``postgres`` user can reach."""
        if os.geteuid() != 0:
            return self.state / "postgres"
        digest = hashlib.sha1(str(self.state.resolve()).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"samplehub-stack-postgres-{digest}"

    def postgres_url(self, db: str) -> str:
        """``postgresql://`` URL of database ``db``."""
        return f"postgresql://{PG_USER}@{HOST}:{self.ports['postgres']}/{db}"

    def http(self, port: str) -> str:
        """``http://127.0.0.1:<port>`` of the named port."""
        return f"http://{HOST}:{self.ports[port]}"

    @property
    def spark_master_url(self) -> str:
        """The standalone master's ``spark://`` URL."""
        return f"spark://{HOST}:{self.ports['spark']}"

    def environment(self) -> dict[str, str]:
        """What ``stack.env`` exports: every client of the stack finds its servers from it."""
        extra = os.environ.get("SAMPLEHUB_OVERRIDES", "").replace("profile=stack", "").strip()
        env = {
            "SAMPLEHUB_HOME": str(self.home),
            "SAMPLEHUB_OVERRIDES": f"profile=stack {extra}".strip(),
            "DAGSTER_HOME": str(self.home / "dagster"),
            "DAGSTER_POSTGRES_URL": self.postgres_url("dagster"),
            "MLFLOW_TRACKING_URI": self.http("mlflow"),
            "AWS_ENDPOINT_URL": self.http("s3"),
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "SPARK_MASTER_URL": self.spark_master_url,
            "SPARK_LOCAL_IP": HOST,
            "SPARK_CONF_DIR": str(self.state / "spark-conf"),
            "PYSPARK_PYTHON": sys.executable,
        }
        if "SAMPLEHUB_DATA" in os.environ:
            env["SAMPLEHUB_DATA"] = str(Path(os.environ["SAMPLEHUB_DATA"]).resolve())
        return env

    def services(self) -> dict[str, Service]:
        """Every service of the stack, in start order."""
        bindir = postgres_bin()
        spark_class = spark_home() / "bin" / "spark-class"
        spark_env = {"SPARK_LOG_DIR": str(self.state / "logs"),
                     "SPARK_WORKER_DIR": str(self.state / "spark-work")}
        workspace = str(REPO / "infra" / "workspace.yaml")
        dagster = self.http("dagster")
        return {service.name: service for service in [
            Service("postgres", [str(bindir / "postgres"), "-D", str(self.postgres_data),
                                 "-p", str(self.ports["postgres"]),
                                 "-c", f"listen_addresses={HOST}",
                                 "-c", "unix_socket_directories="],
                    self.postgres_url("dagster"), lambda: postgres_answers(self),
                    user="postgres" if os.geteuid() == 0 else None,
                    stop_signal=signal.SIGINT, signal_group=False),
            Service("s3", [sys.executable, "-m", "moto.server", "-H", HOST,
                           "-p", str(self.ports["s3"])],
                    self.http("s3"), lambda: http_ok(self.http("s3"))),
            Service("mlflow", [sys.executable, "-m", "mlflow", "server", "--host", HOST,
                               "--port", str(self.ports["mlflow"]), "--workers", "1",
                               "--backend-store-uri", self.postgres_url("mlflow"),
                               "--artifacts-destination", str(self.state / "mlflow-artifacts")],
                    self.http("mlflow"), lambda: http_ok(f"{self.http('mlflow')}/health")),
            Service("spark-master", [str(spark_class), "org.apache.spark.deploy.master.Master",
                                     "--host", HOST, "--port", str(self.ports["spark"]),
                                     "--webui-port", str(self.ports["spark-ui"])],
                    f"{self.spark_master_url} (web UI {self.http('spark-ui')})",
                    lambda: http_ok(f"{self.http('spark-ui')}/json/"), env=spark_env),
            Service("spark-worker", [str(spark_class), "org.apache.spark.deploy.worker.Worker",
                                     "--host", HOST,
                                     "--webui-port", str(self.ports["spark-worker-ui"]),
                                     "--cores", str(self.worker_cores),
                                     "--memory", self.worker_memory,
                                     "--work-dir", str(self.state / "spark-work"),
                                     self.spark_master_url],
                    f"{self.http('spark-worker-ui')} ({self.worker_cores} cores, "
                    f"{self.worker_memory})",
                    lambda: spark_alive_workers(self.http("spark-ui")) > 0, env=spark_env),
            Service("dagster-webserver", [str(BIN / "dagster-webserver"), "-h", HOST,
                                          "-p", str(self.ports["dagster"]), "-w", workspace,
                                          "--log-level", "warning"],
                    dagster, lambda: http_ok(f"{dagster}/server_info")),
            Service("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace,
                                       "--log-level", "warning"],
                    f"heartbeats in {self.postgres_url('dagster')}",
                    lambda: daemons_healthy(dagster)),
        ]}


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server's bin folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise StackError("PostgreSQL server binaries not found under /usr/lib/postgresql: "
                         "apt-get install postgresql")
    return Path(found[-1]).parent


def spark_home() -> Path:
    """The pyspark wheel's Spark distribution (its ``bin/spark-class`` needs Java 17)."""
    if shutil.which("java") is None:
        raise StackError("java not found: apt-get install openjdk-17-jre-headless")
    try:
        import pyspark
    except ImportError as exc:
        raise StackError("pyspark not installed: pip install 'samplehub[spark]'") from exc
    return Path(pyspark.__file__).parent


def http_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def postgres_answers(stack: Stack) -> bool:
    """Whether the server accepts a connection."""
    import psycopg2

    try:
        psycopg2.connect(stack.postgres_url("postgres"), connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def spark_alive_workers(webui: str) -> int:
    """How many workers the standalone master lists as ALIVE (its web UI's ``/json/``)."""
    try:
        with urllib.request.urlopen(f"{webui}/json/", timeout=3) as response:
            workers = json.load(response)["workers"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(worker["state"] == "ALIVE" for worker in workers)


def daemons_healthy(webserver: str) -> bool:
    """Whether every required daemon heartbeats, as the webserver reads it from the instance."""
    request = urllib.request.Request(f"{webserver}/graphql", method="POST",
                                     data=json.dumps({"query": DAEMON_HEALTH}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            statuses = json.load(response)["data"]["instance"]["daemonHealth"][
                "allDaemonStatuses"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(status["healthy"] for status in statuses if status["required"])


def port_taken(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (a closed one in TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a process that is not a zombie (Linux ``/proc``)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and int(pgrp) == pgid:
                return True
    return False


def running_pid(stack: Stack, name: str) -> int | None:
    """The pid of ``name`` if its pid file names a live process group; else None."""
    path = stack.pid_file(name)
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text())
        if group_alive(pid):
            return pid
    return None


def launch(stack: Stack, service: Service) -> subprocess.Popen[bytes]:
    """Start ``service`` as its own process group and write its pid file."""
    with stack.log(service.name).open("ab") as log:
        process = subprocess.Popen(service.command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=REPO,
                                   env={**os.environ, **service.env}, user=service.user,
                                   start_new_session=True)
    stack.pid_file(service.name).write_text(f"{process.pid}\n")
    return process


def wait_ready(stack: Stack, service: Service, process: subprocess.Popen[bytes],
               timeout: float) -> None:
    """Wait until ``service`` answers; print its line. Raises StackError with its log's tail."""
    deadline = time.monotonic() + timeout
    while not service.ready():
        problem = (f"exited with {process.returncode}" if process.poll() is not None
                   else f"did not answer within {timeout:.0f} s"
                   if time.monotonic() > deadline else None)
        if problem:
            tail = stack.log(service.name).read_text(errors="replace")[-2500:]
            raise StackError(f"{service.name} {problem}; {stack.log(service.name)} ends:\n{tail}")
        time.sleep(0.5)
    print(f"{service.name:<18} {service.url}", flush=True)


def init_postgres(stack: Stack, user: str | None) -> None:
    """Create the database cluster on first start (superuser ``samplehub``, trust on loopback)."""
    data, link = stack.postgres_data, stack.state / "postgres"
    if data != link and not link.is_symlink():  # as root: the state folder links to /var/tmp
        shutil.rmtree(data, ignore_errors=True)  # left by a deleted state folder of this path
        link.symlink_to(data)
    if (data / "PG_VERSION").is_file():
        return
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data, user, user)
    subprocess.run([str(postgres_bin() / "initdb"), "-D", str(data), "-U", PG_USER,
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True,
                   user=user, cwd=data)


def create_databases(stack: Stack) -> None:
    """Databases ``dagster`` (Dagster's instance) and ``mlflow`` (MLflow's backend store)."""
    import psycopg2

    connection = psycopg2.connect(stack.postgres_url("postgres"))
    connection.autocommit = True  # CREATE DATABASE runs outside a transaction
    try:
        with connection.cursor() as cursor:
            for db in ("dagster", "mlflow"):
                cursor.execute("select 1 from pg_database where datname = %s", (db,))
                if cursor.fetchone() is None:
                    cursor.execute(f'create database "{db}"')
    finally:
        connection.close()


def create_buckets(stack: Stack, uris: list[str]) -> None:
    """Create the buckets that ``storage=s3``'s catalog and store URIs name."""
    import boto3

    client = boto3.client("s3", endpoint_url=stack.http("s3"), aws_access_key_id=S3_KEY,
                          aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in sorted({uri.removeprefix("s3://").split("/")[0] for uri in uris} - existing):
        client.create_bucket(Bucket=bucket)


def write_env_file(stack: Stack) -> Path:
    """``<state>/stack.env``: ``export NAME=value`` lines to ``source``."""
    path = stack.state / "stack.env"
    lines = [f"export {name}={shlex.quote(value)}" for name, value in stack.environment().items()]
    path.write_text("# Written by infra/stack.py start; `source` it to use the stack.\n"
                    + "\n".join(lines) + "\n")
    return path


def start(stack: Stack, timeout: float) -> int:
    """Start every service not running, in dependency order; 0 once all answer."""
    running = [name for name in SERVICES if running_pid(stack, name)]
    if len(running) == len(SERVICES):
        print(f"stack already running in {stack.state}")
        return status(stack)
    if running:
        raise StackError(f"part of the stack in {stack.state} is running ({', '.join(running)}); "
                         "run `python infra/stack.py stop` first")
    for name, port in stack.ports.items():
        if port_taken(port):
            raise StackError(f"port {port} on {HOST} ({name}) is taken: stop what listens there "
                             f"or pick another with --{name}-port or "
                             f"SAMPLEHUB_STACK_{name.upper().replace('-', '_')}_PORT")
    for folder in ("logs", "pids", "spark-conf", "spark-work", "mlflow-artifacts"):
        (stack.state / folder).mkdir(parents=True, exist_ok=True)
    (stack.state / "spark-conf" / "spark-defaults.conf").write_text(SPARK_DEFAULTS)
    services = stack.services()
    stack.save()
    os.environ.update(stack.environment())  # profile=stack reads its addresses from these
    from samplehub.config import load_config
    from samplehub.instance import write_instance_yaml

    config = load_config()
    started: dict[str, subprocess.Popen[bytes]] = {}

    def up(*names: str) -> None:
        for name in names:
            started[name] = launch(stack, services[name])

    def ready(*names: str) -> None:
        for name in names:
            wait_ready(stack, services[name], started[name], timeout)

    try:
        init_postgres(stack, services["postgres"].user)
        up("postgres")
        ready("postgres")
        create_databases(stack)
        write_instance_yaml(config, stack.home / "dagster")
        up("s3", "mlflow", "spark-master", "dagster-webserver")
        ready("s3")
        create_buckets(stack, [config.catalog_uri, config.store_uri])
        ready("spark-master")
        up("spark-worker")
        ready("mlflow", "dagster-webserver")
        up("dagster-daemon")
        ready("spark-worker", "dagster-daemon")
    except BaseException:
        stop(stack, quiet=True)
        raise
    print(f"environment: source {write_env_file(stack)}")
    return 0


def stop(stack: Stack, quiet: bool = False) -> int:
    """Stop every running service, last started first, by its process group; 0 always."""
    services = stack.services()
    for name in reversed(SERVICES):
        pid = running_pid(stack, name)
        if pid is not None:
            service = services[name]
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if service.signal_group else os.kill)(pid, service.stop_signal)
            started = time.monotonic()
            while group_alive(pid) and time.monotonic() < started + 30:
                time.sleep(0.2)
            how = f"{time.monotonic() - started:.1f} s"
            if group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
                how = f"killed after {how}"
            if not quiet:
                print(f"{name:<18} stopped (pid {pid}, {how})")
        stack.pid_file(name).unlink(missing_ok=True)
    return 0


def status(stack: Stack) -> int:
    """One line per service: running and answering, running, or stopped; 0 if all answer."""
    services, answering = stack.services(), 0
    for name in SERVICES:
        pid = running_pid(stack, name)
        if pid is None:
            print(f"{name:<18} stopped")
            continue
        ok = services[name].ready()
        answering += ok
        print(f"{name:<18} {services[name].url}  (pid {pid}{'' if ok else ', not answering'})")
    return 0 if answering == len(SERVICES) else 3


def default_state() -> Path:
    """``<SAMPLEHUB_HOME or ~/.samplehub>/stack``."""
    return Path(os.environ.get("SAMPLEHUB_HOME", "~/.samplehub")).expanduser().resolve() / "stack"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run ``start``, ``stop`` or ``status``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state", type=Path, default=None,
                        help="state folder (default: <SAMPLEHUB_HOME or ~/.samplehub>/stack)")
    for name, port in PORTS.items():
        env = f"SAMPLEHUB_STACK_{name.upper().replace('-', '_')}_PORT"
        parser.add_argument(f"--{name}-port", type=int, default=int(os.environ.get(env, port)),
                            help=f"default {port} (or ${env})")
    parser.add_argument("--worker-cores", type=int, default=os.cpu_count() or 1,
                        help="cores the Spark worker offers (default: all)")
    parser.add_argument("--worker-memory", default="2g",
                        help="memory the Spark worker offers (default: 2g)")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds to wait for each service to answer")
    args = parser.parse_args(argv)
    state = (args.state or default_state()).expanduser().resolve()
    try:
        if args.command == "start":
            ports = {name: getattr(args, f"{name.replace('-', '_')}_port") for name in PORTS}
            home = Path(os.environ.get("SAMPLEHUB_HOME", "~/.samplehub")).expanduser().resolve()
            return start(Stack(state, ports, home, args.worker_cores, args.worker_memory),
                         args.timeout)
        stack = Stack.load(state)
        if stack is None:
            print(f"no stack in {state}" + (" (nothing to stop)" if args.command == "stop"
                                            else ""))
            return 0 if args.command == "stop" else 3
        return stop(stack) if args.command == "stop" else status(stack)
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
