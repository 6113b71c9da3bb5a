"""Hash models tracked by an MLflow tracking server with a PostgreSQL backend store.

DESIGN.md section 3, "model tracking" at scale: ``mlflow.tracking_uri`` points SampleHub at
``mlflow server`` on loopback (``tests/loopback.py``), whose runs and registry live in the
session's PostgreSQL and whose artifacts it serves itself. A tiny DMCH run is trained and
promoted through it, and the champion is read back and loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hash_fixture import tiny_hash_repository
from loopback import Postgres, mlflow_server

from samplehub.models.hash_model import champion, load_hash_model, train_hash_model
from samplehub.models.tracking import artifact_location, has_tracking_store, tracking_uri


@pytest.fixture(scope="module")
def mlflow_uri(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 backed by database ``mlflow`` of the session's PostgreSQL."""
    backend = postgres.create_database("mlflow")
    with mlflow_server(backend, tmp_path_factory.mktemp("mlflow") / "artifacts") as url:
        yield url


@pytest.mark.integration
def test_hash_model_is_promoted_and_read_back_through_the_server(
    home: Path, mlflow_uri: str, postgres: Postgres
) -> None:
    import psycopg2

    repo = tiny_hash_repository([f"mlflow.tracking_uri={mlflow_uri}"])
    assert tracking_uri(repo.config) == mlflow_uri
    assert artifact_location(repo.config) is None  # the server stores the artifacts
    assert has_tracking_store(repo.config) and champion(repo.config) is None

    first = train_hash_model(repo, "dmch")
    second = train_hash_model(repo, "dmch")  # same data and seed: not strictly better
    assert (first.version, first.promoted) == ("1", True)
    assert (second.version, second.promoted, second.champion_map) == ("2", False, first.val_map)

    found = champion(repo.config)
    assert found is not None and (found.name, found.version) == ("dmch-16", "1")
    assert found.run_id == first.run_id and found.tags["dataset"] == "tree"
    model = load_hash_model(repo.config)
    assert model.model_version == "dmch-16-v1"
    codes, values = model.encode(np.random.default_rng(0).standard_normal((2, 32), np.float32))
    assert codes.shape == values.shape == (2, 16)
    assert not (home / "mlflow.db").exists() and not (home / "mlartifacts").exists()

    with psycopg2.connect(postgres.url("mlflow")) as connection:
        cursor = connection.cursor()
        cursor.execute("select name, version from model_versions order by version")
        assert cursor.fetchall() == [("dmch-16", 1), ("dmch-16", 2)]
        cursor.execute("select name, alias, version from registered_model_aliases")
        assert cursor.fetchall() == [("dmch-16", "champion", 1)]
