"""An MLflow tracking server that fails while a model is tracked and promoted.

``mlflow server`` (PostgreSQL backend store, artifacts proxied) runs on loopback behind
``tests/fault_proxy.py``. A DMCH model is trained on the tiny hash fixture and promoted
to ``dmch-16@champion``; that champion's validation mAP is then lowered to 0, so every
later run would replace it. Then:

- ``flaky``: a tenth of all requests fail (500, 503, resets); MLflow's client retries
  them within ``mlflow.request_retries`` and the run is promoted;
- ``deaths``: the server dies at one request of a run: before the run is created, during
  the model's upload, at the version's registration and at the alias move itself. Each
  training must fail with one :class:`~samplehub.errors.ModelRegistryError` within the
  retry budget, and once the server is back ``dmch-16@champion`` must still name the
  same version and load.

The tracking URI carries ``user:password@``; no error message or console line may show
the password. Used by ``tests/samplehub/test_mlflow_faults.py`` and ``bench/reliability.py``.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

from fault_proxy import FaultPlan, FaultProxy
from hash_fixture import TINY, tiny_hash_repository
from loopback import mlflow_server

from samplehub.config import load_config
from samplehub.errors import ModelRegistryError
from samplehub.models.hash_model import champion, load_hash_model, train_hash_model
from samplehub.repository import Repository

PASSWORD = "registry-s3cret"
DEATHS = {
    "before the run": "POST /api/2.0/mlflow/runs/create",
    "during the model upload": "PUT /api/2.0/mlflow-artifacts/",
    "at the version's registration": "POST /api/2.0/mlflow/model-versions/create",
    "at the alias move": "POST /api/2.0/mlflow/registered-models/alias",
}
BUDGET = ["mlflow.request_retries=2", "mlflow.request_backoff_s=0",
          "mlflow.request_timeout_s=5"]


def registry_fault_scenarios(backend_store_uri: str, work: Path, rate: float = 0.1,
                             seed: int = 0, flaky_runs: int = 1,
                             shipped_budget: bool = False) -> dict[str, Any]:
    """Run the scenarios of the module docstring; returns the ``mlflow_faults`` row.

    Args:
        backend_store_uri: a PostgreSQL database for the MLflow server.
        work: a fresh folder for the home, the artifacts and the server's log.
        rate: share of requests that fail in the flaky runs.
        seed: seeds the flaky runs' draws.
        flaky_runs: trainings over the flaky server, one after the other.
        shipped_budget: also let the server die at the alias move under the shipped retry
            budget (``conf/mlflow``), to time what a user waits for the error (a minute).
    """
    console = io.StringIO()
    started = time.perf_counter()
    with (mlflow_server(backend_store_uri, work / "artifacts") as url,
          FaultProxy(url) as proxy,
          contextlib.redirect_stdout(console), contextlib.redirect_stderr(console)):
        uri = proxy.endpoint_url.replace("http://", f"http://samplehub:{PASSWORD}@")
        repo = tiny_hash_repository([f"home={work / 'home'}", f"mlflow.tracking_uri={uri}",
                                     *BUDGET])
        first = train_hash_model(repo, "dmch")
        import mlflow

        mlflow.MlflowClient(proxy.endpoint_url).log_metric(first.run_id, "val_map", 0.0)
        deaths = []
        for where, request in DEATHS.items():
            proxy.plan = FaultPlan(die_on=request)
            tried = time.perf_counter()
            error = ""
            try:
                train_hash_model(repo, "dmch")
            except ModelRegistryError as exc:
                error = str(exc)
            seconds = time.perf_counter() - tried
            proxy.up()
            found = champion(repo.config)
            deaths.append({
                "where": where, "request": request,
                "died": proxy.plan.dead or bool(proxy.plan.injected),
                "failed_cleanly": bool(error) and "was not moved" in error,
                "seconds_to_fail": round(seconds, 1),
                "champion_unchanged": found is not None and found.version == first.version,
                "champion_loads": load_hash_model(repo.config).model_version
                == f"dmch-16-v{first.version}",
                "error": error[:300],
            })
        flaky = []
        for run in range(flaky_runs):
            proxy.plan = FaultPlan(rate=rate, seed=seed + run)
            trained = train_hash_model(repo, "dmch")
            flaky.append({"injected": sum(proxy.plan.injected.values()),
                          "forwarded": proxy.plan.forwarded, "promoted": trained.promoted,
                          "version": trained.version})
        proxy.plan = FaultPlan()
        promoted = champion(repo.config)
        shipped: dict[str, Any] = {}
        if shipped_budget:
            before = promoted
            # the same home under the shipped budget (tiny_hash_repository would add its
            # features a second time)
            repo = Repository(load_config([*TINY, f"home={work / 'home'}",
                                           f"mlflow.tracking_uri={uri}"]))
            mlflow.MlflowClient(proxy.endpoint_url).log_metric(
                before.run_id if before else first.run_id, "val_map", 0.0)
            proxy.plan = FaultPlan(die_on=DEATHS["at the alias move"])
            tried = time.perf_counter()
            try:
                train_hash_model(repo, "dmch")
                shipped["failed_cleanly"] = False
            except ModelRegistryError as exc:
                shipped["failed_cleanly"] = "was not moved" in str(exc)
            shipped["seconds_to_fail"] = round(time.perf_counter() - tried, 1)
            proxy.up()
            after = champion(repo.config)
            shipped["champion_unchanged"] = (after is not None and before is not None
                                             and after.version == before.version)
            shipped["budget"] = {k: getattr(repo.config.mlflow, k) for k in (
                "request_retries", "request_backoff_s", "request_timeout_s")}
    text = console.getvalue() + "".join(d["error"] for d in deaths)
    return {
        "data": "tiny fixture (12 images, seeded 32-d features): the registry is under test, "
                "not the model",
        "server": "mlflow server, PostgreSQL backend store, behind tests/fault_proxy.py",
        "budget": BUDGET,
        "seconds": round(time.perf_counter() - started, 1),
        "deaths": deaths,
        "injected": len(deaths),
        "failed_cleanly": sum(d["failed_cleanly"] for d in deaths),
        "champion_unchanged": sum(d["champion_unchanged"] and d["champion_loads"]
                                  for d in deaths),
        "flaky": {"rate": rate, "runs": flaky,
                  "injected": sum(f["injected"] for f in flaky),
                  "completed": len(flaky),
                  "champion_after": promoted.version if promoted else None},
        "shipped_budget_death": shipped,
        "password_shown": PASSWORD in text,
    }
