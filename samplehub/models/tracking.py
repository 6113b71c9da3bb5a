"""Where MLflow tracks and registers SampleHub's models (DESIGN.md section 3, "model tracking").

``mlflow.tracking_uri`` of the config, by default ``sqlite:///<home>/mlflow.db`` with
artifacts under ``<home>/mlartifacts``. Both the feature model
(:mod:`samplehub.models.feature_model`) and the hash models
(:mod:`samplehub.models.hash_model`) are registered there.
"""

from __future__ import annotations

from pathlib import Path

from samplehub.config import SampleHubConfig

MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"


def tracking_uri(config: SampleHubConfig) -> str:
    """The MLflow tracking URI: ``mlflow.tracking_uri``, else ``sqlite:///<home>/mlflow.db``."""
    return config.mlflow.tracking_uri or f"sqlite:///{config.home_path / MLFLOW_DB}"


def artifact_location(config: SampleHubConfig) -> Path | None:
    """Where new experiments store artifacts; None leaves it to the tracking server.

    ``mlflow.artifact_location`` when set; else ``<home>/mlartifacts`` for the default
    SQLite store, and None (the server's ``--artifacts-destination``) for a configured URI.
    """
    if config.mlflow.artifact_location:
        return Path(config.mlflow.artifact_location).expanduser().resolve()
    if config.mlflow.tracking_uri:
        return None
    return config.home_path / MLFLOW_ARTIFACTS


def local_store(config: SampleHubConfig) -> Path | None:
    """The SQLite file behind a ``sqlite:///`` tracking URI, None for a server."""
    uri = tracking_uri(config)
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def has_tracking_store(config: SampleHubConfig) -> bool:
    """Whether the tracking store can hold a model: a server, or an existing SQLite file.

    Lets the readers below answer "nothing registered" without creating an empty store.
    """
    store = local_store(config)
    return store is None or store.is_file()
