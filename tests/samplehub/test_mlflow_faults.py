"""An MLflow server that fails at promotion leaves the champion as it was, visibly.

The scenarios of ``tests/registry_faults.py``: a real ``mlflow server`` with a PostgreSQL
backend store behind the fault-injecting proxy, a flaky run that the client's retries
carry through, and four runs whose server dies at one of their requests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from loopback import Postgres
from registry_faults import DEATHS, registry_fault_scenarios

from samplehub.config import load_config
from samplehub.errors import ConfigError, without_credentials
from samplehub.models.tracking import tracking_uri

pytestmark = pytest.mark.integration
CLIENT_ENVIRONMENT = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                      "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                      "MLFLOW_HTTP_REQUEST_TIMEOUT")


@pytest.fixture(autouse=True)
def client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracking client's settings that :func:`tracking_uri` sets, undone after each test."""
    for name in CLIENT_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_a_dead_tracking_server_fails_the_promotion_and_keeps_the_champion(
    postgres: Postgres, tmp_path: Path
) -> None:
    row = registry_fault_scenarios(postgres.create_database("mlflow_faults"), tmp_path)

    for death in row["deaths"]:
        assert death["died"], f"the server never died {death['where']}"
        assert death["failed_cleanly"], death
        assert "samplehub@" not in death["error"] and "dmch-16@champion" in death["error"]
        assert death["champion_unchanged"] and death["champion_loads"], death
        # the budget: 3 tries of 5 s at most per request, not MLflow's minutes of retries
        assert death["seconds_to_fail"] < 60, death
    assert [d["where"] for d in row["deaths"]] == list(DEATHS)
    (flaky,) = row["flaky"]["runs"]
    assert flaky["injected"] > 0 and flaky["promoted"]
    assert row["flaky"]["champion_after"] == flaky["version"]
    assert not row["password_shown"]


def test_credentials_leave_the_tracking_uri(home: Path) -> None:
    config = load_config(["mlflow.tracking_uri=http://ann:p%40ss@mlflow.example:5000/x"])
    assert tracking_uri(config) == "http://mlflow.example:5000/x"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "ann", "p@ss")
    assert without_credentials("at postgresql://u:pw@db:5432/x and s3://k:s@b/") == (
        "at postgresql://db:5432/x and s3://b/")
    with pytest.raises(ConfigError, match=r"mlflow\.request_retries"):
        load_config(["mlflow.request_retries=-1"])
