"""Where MLflow tracks and registers SampleHub's models (DESIGN.md section 3, "model tracking").

``mlflow.tracking_uri`` of the config, by default ``sqlite:///<home>/mlflow.db`` with
artifacts under ``<home>/mlartifacts``. Both the feature model
(:mod:`samplehub.models.feature_model`) and the hash models
(:mod:`samplehub.models.hash_model`) are registered there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from samplehub.config import SampleHubConfig
from samplehub.errors import ModelRegistryError, without_credentials

MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"


def tracking_uri(config: SampleHubConfig) -> str:
    """The MLflow tracking URI: ``mlflow.tracking_uri``, else ``sqlite:///<home>/mlflow.db``.

    Every SampleHub call into MLflow gets its URI here, so this also sets up MLflow's HTTP
    client, which reads its settings from the process environment at each request (it has
    no per-client settings):

    * the ``mlflow.request_*`` retry budget; without it a dead tracking server holds each
      request for about four minutes of retries;
    * the credentials of a ``http://user:password@host`` URI move to
      ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` and the URI comes back
      without them, so no URL that MLflow logs, prints or raises carries them (a URI
      without credentials leaves those variables as they are, so credentials set there
      keep working);
    * MLflow's "View run at <url>" lines stay off the console.
    """
    m = config.mlflow
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(m.request_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(m.request_backoff_s)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, m.request_timeout_s)))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if not m.tracking_uri:
        return f"sqlite:///{config.home_path / MLFLOW_DB}"
    parts = urlsplit(m.tracking_uri)
    if parts.scheme not in ("http", "https") or parts.username is None:
        return m.tracking_uri
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password or "")
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@contextmanager
def registry_failures(config: SampleHubConfig, model: str, alias: str) -> Iterator[None]:
    """Turn a tracking store that fails mid-training into one :class:`ModelRegistryError`.

    Logging, registering and promoting a run are several requests and the alias moves in
    the last one, so a store that dies or refuses a request before then leaves
    ``model@alias`` on the previous champion. The error says so, names the store
    (without credentials) and carries MLflow's own message.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        uri = without_credentials(tracking_uri(config))
        detail = without_credentials(str(exc).splitlines()[0] if str(exc) else repr(exc))
        raise ModelRegistryError(
            f"the MLflow tracking store at {uri} failed while {model} was tracked and "
            f"promoted, so {model}@{alias} was not moved and the served model is unchanged; "
            f"train again once the store answers. After mlflow.request_retries="
            f"{config.mlflow.request_retries}: {detail[:300]}"
        ) from exc


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
