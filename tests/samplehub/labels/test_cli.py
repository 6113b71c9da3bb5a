"""``samplehub labels ...`` end to end on a temporary home (needs ../shared); errors go
through the CLI's one handler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labels_shared import UCM_MULTILABEL, needs_shared
from typer.testing import CliRunner

from samplehub.cli.labels import labels_app
from samplehub.cli.main import main

pytestmark = needs_shared
runner = CliRunner()


def test_merge_map_associated_export_draw(tmp_path: Path) -> None:
    home = ["--set", f"home={tmp_path}"]
    result = runner.invoke(
        labels_app, ["merge-taxonomy", "uc_merced_21", "uc_merced_multilabel_17", *home]
    )
    assert result.exit_code == 0, result.output
    assert "label graph version 1" in result.output

    result = runner.invoke(labels_app, ["map", "uc_merced_21", *home])
    assert result.exit_code == 0, result.output
    assert "storagetanks" in result.output and "storage_tank" in result.output

    result = runner.invoke(labels_app, ["cooccur-ucmerced", str(UCM_MULTILABEL), *home])
    assert result.exit_code == 0 and "version 2" in result.output

    result = runner.invoke(labels_app, ["associated", "river", "--max-distance", "2", *home])
    assert result.exit_code == 0
    assert "uc_merced_multilabel_17/water" in result.output and "co_occurs" in result.output

    result = runner.invoke(labels_app, ["tree", *home])
    assert "water_area" in result.output and "golf_course?" in result.output

    out = tmp_path / "g.json"
    assert runner.invoke(labels_app, ["export", str(out), "--format", "json", *home]).exit_code == 0
    assert json.loads(out.read_text())["version"] == 2
    graphml = tmp_path / "g.graphml"
    assert (
        runner.invoke(labels_app, ["export", str(graphml), "--format", "graphml", *home]).exit_code
        == 0
    )
    assert "<graphml" in graphml.read_text()[:400]

    png = tmp_path / "river.png"
    assert runner.invoke(labels_app, ["draw", "river", "--out", str(png), *home]).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("command", "message"),
    [(["map", "uc_merced_21"], "no label graph"), (["merge-taxonomy", "no_such_dataset"],
                                                   "no_such_dataset")],
)
def test_errors_are_one_line_and_exit_2(
    command: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["samplehub", "labels", *command, "--set", f"home={tmp_path}"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    out = capsys.readouterr().out
    assert message in out and "Traceback" not in out
