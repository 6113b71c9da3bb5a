"""``samplehub query`` (samplehub.cli.query) against the tiny repository of conftest.py."""

from __future__ import annotations

import json

import pytest
import typer
from query_fixture import Fixture
from typer.testing import CliRunner

from samplehub.cli.query import query

app = typer.Typer()
app.command()(query)
app.command("noop")(lambda: None)  # two commands keep `query` a named subcommand


@pytest.fixture()
def cli_env(built: Fixture, monkeypatch: pytest.MonkeyPatch) -> Fixture:
    monkeypatch.setenv("SAMPLEHUB_HOME", str(built.repo.config.home_path))
    return built


def test_table_output(cli_env: Fixture) -> None:
    result = CliRunner().invoke(
        app, ["query", "--label", "river", "--bbox", "-110,30,-90,50", "--limit", "3",
              "--set", "retrieval.max_label_distance=2.0"],
    )
    assert result.exit_code == 0, result.output
    assert "river -> river: 30 exact" in result.output
    assert "beta" in result.output and "alpha" not in result.output


def test_json_output(cli_env: Fixture) -> None:
    result = CliRunner().invoke(
        app, ["query", "-l", "river", "-l", "bridge", "--time", "2019-01-01/2021-01-01",
              "--dataset", "alpha", "--k", "5", "--no-supplementary", "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {h["query_label"] for h in payload["hits"]} == {"river", "bridge"}
    assert {h["kind"] for h in payload["hits"]} == {"exact"}
    assert payload["spec"]["time_range"][0].startswith("2019-01-01")


def test_bad_bbox_is_a_usage_error(cli_env: Fixture) -> None:
    result = CliRunner().invoke(app, ["query", "--label", "river", "--bbox", "1,2,3"])
    assert result.exit_code == 2 and "--bbox" in result.output
