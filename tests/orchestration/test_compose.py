"""``infra/compose/compose.yaml`` stays the container twin of ``infra/stack.py``.

No container engine exists here, so the file cannot run in the tests; these check what can
drift: it names every service the package stack starts (plus Neo4j and the bucket job),
publishes each on 127.0.0.1 at the stack's default port, and hands SampleHub's containers
every address variable that ``stack.env`` exports to clients.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "infra" / "compose" / "compose.yaml"


def load_stack() -> Any:
    spec = importlib.util.spec_from_file_location("infra_stack", REPO / "infra" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_compose_names_the_stacks_services_on_its_ports_on_loopback() -> None:
    stack = load_stack()
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) - set(stack.SERVICES) == {"s3-buckets", "neo4j"}
    assert set(stack.SERVICES) <= set(services)
    port_of = {"postgres": "postgres", "s3": "s3", "mlflow": "mlflow",
               "spark-master": "spark", "dagster-webserver": "dagster"}
    for name, port in port_of.items():
        published = services[name]["ports"]
        assert f"127.0.0.1:{stack.PORTS[port]}:{stack.PORTS[port]}" in published, name
    every = [p for service in services.values() for p in service.get("ports", [])]
    assert every and all(p.startswith("127.0.0.1:") for p in every)


def test_samplehubs_containers_get_every_address_stack_env_exports(tmp_path: Path) -> None:
    stack = load_stack()
    exported = set(stack.Stack(state=tmp_path, ports=dict(stack.PORTS), home=tmp_path,
                               worker_cores=1, worker_memory="1g").environment())
    # Paths of the host (homes, the Spark conf folder, this venv's python) are the image's own.
    host_only = {"SAMPLEHUB_HOME", "DAGSTER_HOME", "SPARK_CONF_DIR", "PYSPARK_PYTHON",
                 "SPARK_LOCAL_IP", "SAMPLEHUB_DATA"}
    compose = yaml.safe_load(COMPOSE.read_text())
    for name in ("mlflow", "spark-master", "spark-worker", "dagster-webserver",
                 "dagster-daemon"):
        environment = compose["services"][name]["environment"]
        assert exported - host_only <= set(environment), name
        assert environment["SAMPLEHUB_OVERRIDES"] == "profile=stack"
