"""Backends chosen by configuration (DESIGN.md section 3): the Dagster instance file written
for ``instance=sqlite|postgres`` and MLflow's tracking URI from ``conf/mlflow``. The real
servers are exercised in ``tests/orchestration/test_postgres_instance.py`` and
``test_mlflow_server.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from samplehub.cli.main import app
from samplehub.config import load_config
from samplehub.errors import ConfigError
from samplehub.instance import (
    INFRA_INSTANCE,
    dagster_home,
    instance_settings,
    write_instance_yaml,
)
from samplehub.models.tracking import artifact_location, has_tracking_store, tracking_uri

URL = "postgresql://dagster:secret@127.0.0.1:5432/dagster"


def shared_settings() -> dict:
    """``infra/dagster.yaml``: what every instance carries besides its storage."""
    return OmegaConf.to_container(OmegaConf.load(INFRA_INSTANCE))  # type: ignore[return-value]


def test_sqlite_instance_has_the_shared_settings_and_no_storage(home: Path) -> None:
    config = load_config()
    settings = instance_settings(config)
    assert settings == shared_settings() and settings["telemetry"] == {"enabled": False}
    assert "storage" not in settings  # Dagster's SQLite default under DAGSTER_HOME
    path = write_instance_yaml(config)
    assert path == dagster_home(config) / "dagster.yaml" == home / "dagster" / "dagster.yaml"
    assert path.read_text().startswith("# Written by samplehub")
    assert OmegaConf.to_container(OmegaConf.load(path)) == settings


def test_postgres_instance_stores_everything_at_the_configured_url(tmp_path: Path) -> None:
    config = load_config(["instance=postgres", f"instance.postgres_url={URL}"])
    path = write_instance_yaml(config, tmp_path / "dh")
    written = OmegaConf.to_container(OmegaConf.load(path))
    storage = {"postgres": {"postgres_url": URL}}
    assert written == {**shared_settings(), "storage": storage}
    assert path.stat().st_mode & 0o077 == 0  # the URL may hold a password
    stamp = path.stat().st_mtime_ns
    assert write_instance_yaml(config, tmp_path / "dh") == path  # unchanged: not rewritten
    assert path.stat().st_mtime_ns == stamp


def test_postgres_url_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", URL)
    assert load_config(["instance=postgres"]).instance.postgres_url == URL


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["instance.kind=mysql"], "instance.kind='mysql'"),
        (["instance=postgres", "instance.postgres_url=sqlite:///x"], "instance.postgres_url"),
    ],
)
def test_a_bad_instance_is_refused_naming_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        instance_settings(load_config(overrides))


def test_a_refused_instance_url_does_not_show_its_password() -> None:
    config = load_config(["instance=postgres", "instance.postgres_url=mysql://u:pw1@db/x"])
    with pytest.raises(ConfigError) as refused:
        instance_settings(config)
    assert "pw1" not in str(refused.value)


def test_overrides_from_the_environment_reach_every_process(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMPLEHUB_OVERRIDES", f"instance=postgres instance.postgres_url={URL}")
    config = load_config()
    assert (config.instance.kind, config.instance.postgres_url) == ("postgres", URL)
    assert load_config(["instance=sqlite"]).instance.kind == "sqlite"  # explicit ones win


def test_cli_writes_the_instance_file(home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["instance", "write", "--dagster-home", str(tmp_path / "dh"), "--set", "instance=postgres",
         "--set", f"instance.postgres_url={URL}"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "instance=postgres" in result.output
    assert f"DAGSTER_HOME={tmp_path / 'dh'}" in result.output
    assert URL in (tmp_path / "dh" / "dagster.yaml").read_text()


def test_tracking_uri_defaults_to_sqlite_under_home_and_follows_the_config(home: Path) -> None:
    default = load_config()
    assert tracking_uri(default) == f"sqlite:///{home / 'mlflow.db'}"
    assert artifact_location(default) == home / "mlartifacts"
    assert not has_tracking_store(default)  # nothing trained yet, nothing created
    server = load_config(["mlflow=server", "mlflow.tracking_uri=http://127.0.0.1:5999"])
    assert tracking_uri(server) == "http://127.0.0.1:5999"
    assert artifact_location(server) is None and has_tracking_store(server)
    local = load_config(["mlflow.artifact_location=/tmp/art"])
    assert artifact_location(local) == Path("/tmp/art")
