"""``samplehub build`` and ``samplehub serve`` as typer commands."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from query_double import fake_run_query
from typer.testing import CliRunner

from samplehub.cli.build import build
from samplehub.cli.serve import serve
from samplehub.repository import Repository

app = typer.Typer()
app.command("build")(build)
app.command("serve")(serve)


def test_build_command_exports_a_spec(
    small_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("samplehub.retrieval.query.run_query", fake_run_query)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: rivers\nlabels: [river]\nquotas: 6\n"
                    "split: {ratios: {train: 0.5, val: 0.5}}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 6 samples" in result.output
    assert len(pd.read_parquet(out / "manifest.parquet")) == 6
    again = CliRunner().invoke(app, ["build", str(spec), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_build_command_names_the_bad_field(tmp_path: Path, home: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: rivers\nlabels: river\n")
    result = CliRunner().invoke(app, ["build", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "spec field 'labels'" in result.output


def test_serve_command_has_host_and_port() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert "--host" in result.output and "--port" in result.output
