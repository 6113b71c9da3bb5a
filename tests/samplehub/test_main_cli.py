"""The ``samplehub`` CLI on fixture data: ingest, datasets, samples, show, errors."""

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from samplehub.cli.main import app, main

FIXTURES = Path(__file__).resolve().parents[1] / "data"
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_the_commands() -> None:
    output = invoke("--help")
    for command in ("ingest", "datasets", "samples", "show", "quarantine"):
        assert command in output


def test_ingest_list_and_show(home: Path, tmp_path: Path) -> None:
    out = invoke("ingest", str(FIXTURES / "folder_tree"), "--name", "tree")
    assert "added 12" in out or "added" in out
    again = invoke("ingest", str(FIXTURES / "folder_tree"), "--name", "tree")
    assert "added 0" in again
    listing = invoke("datasets")
    assert "tree" in listing and "folder_tree" in listing
    rows = invoke("samples", "--dataset", "tree", "--label", "river", "--limit", "5")
    sample_id = next(line.split()[-2] for line in rows.splitlines() if "river/" in line)
    png = tmp_path / "sample.png"
    shown = invoke("show", sample_id, "--out", str(png))
    assert "river" in shown
    assert Image.open(png).mode == "RGB"


def test_manifest_ingest_takes_images_option(home: Path) -> None:
    manifest = next((FIXTURES / "multilabel_manifest").glob("*.txt"))
    images = FIXTURES / "multilabel_manifest"
    out = invoke(
        "ingest",
        str(manifest),
        "--name",
        "ml",
        "--kind",
        "multilabel_manifest",
        "--option",
        f"images={images}",
    )
    assert "quarantined 0" in out


def test_errors_are_one_clear_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.argv", ["samplehub", "ingest", str(tmp_path / "absent")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "absent" in capsys.readouterr().out
