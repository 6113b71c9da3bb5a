"""A dataset folder cannot pull in files it does not hold: a symlink resolving outside the
source root is quarantined with the reason, never read; links inside the root still work."""

from __future__ import annotations

import shutil
from pathlib import Path

from samplehub.config import load_config
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "folder_tree"


def test_a_symlink_escaping_the_root_is_quarantined_not_read(home: Path, tmp_path: Path) -> None:
    root, outside = tmp_path / "dataset", tmp_path / "elsewhere"
    (root / "farmland").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(FIXTURES / "farmland" / "farmland00.jpg", root / "farmland" / "own.jpg")
    shutil.copy(FIXTURES / "forest" / "forest00.jpg", outside / "private.jpg")
    (root / "farmland" / "escape.jpg").symlink_to(outside / "private.jpg")
    (root / "farmland" / "alias.jpg").symlink_to(root / "farmland" / "own.jpg")
    repo = Repository(load_config())
    report = repo.ingest(SourceSpec(name="confined", uri=str(root), kind="folder_tree"))
    assert report.found == 3 and report.total == 2
    [(relpath, reason)] = [(q.entry.relpath, q.reason) for q in report.quarantined]
    assert relpath == "farmland/escape.jpg"
    assert "outside the source root" in reason and "not read" in reason
    rows = repo.catalog.samples("confined")
    assert sorted(rows["relpath"]) == ["farmland/alias.jpg", "farmland/own.jpg"]
