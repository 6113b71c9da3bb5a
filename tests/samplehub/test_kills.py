"""Killed runs recover: SIGKILL at seeded points, re-run, compare with an uninterrupted run.

Real UC Merced images (8 per class, 168 in all) through the real ``samplehub ingest``
command, feature extraction and an index update, each killed a few times
(``tests/kills.py``; ``bench/reliability.py`` kills each stage 20 times on all 2,100).
"""

import shutil
from pathlib import Path

import pytest
from kills import run_kills

pytestmark = pytest.mark.integration

# Small batches give the ingest and the feature run many commits to be killed between.
OVERRIDES = ["executor.batch_size=16", "model.resolution=64"]


@pytest.fixture
def ucmerced_subset(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ucm"
    for folder in sorted((shared_data / "ucmerced" / "Images").iterdir()):
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:8]:
            shutil.copy(image, root / folder.name / image.name)
    return root


def test_every_killed_stage_recovers_to_the_uninterrupted_result(
    ucmerced_subset: Path, tmp_path: Path
) -> None:
    kills = {"ingest": 3, "features": 2, "index": 2}
    results = run_kills(str(ucmerced_subset), "ucm", tmp_path / "work", OVERRIDES, kills, seed=7)
    for stage, injected in kills.items():
        summary = results[stage].summary()
        assert summary["injected"] == injected
        failed = [k for k in summary["kills"] if not k["recovered"]]
        # every field of a failed kill, untruncated: which check failed is the diagnosis
        assert not failed, f"{stage}: " + "; ".join(
            ", ".join(f"{key}={value}" for key, value in kill.items()) for kill in failed)
        assert summary["lost"] == summary["duplicated"] == 0
    # Kills count from the first write, so they land in the work, not after it.
    assert sum(r.summary()["killed_mid_run"] for r in results.values()) >= 3
