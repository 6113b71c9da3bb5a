"""Killed runs recover: SIGKILL at seeded points, re-run, compare with an uninterrupted run.

Real UC Merced images (8 per class, 168 in all) through the real ``samplehub ingest``
command, feature extraction and an index update, each killed a few times
(``tests/kills.py``; ``bench/reliability.py`` kills each stage 20 times on all 2,100).
"""

import contextlib
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


def test_a_killed_spark_ingest_commits_nothing_and_the_rerun_completes_it(
    ucmerced_subset: Path, tmp_path: Path
) -> None:
    """On Spark the driver commits every executor's part file in one transaction.

    Killed after executors wrote pixels and part files but before that commit, the run
    leaves no catalog row; the next run reclaims the pixels and equals a threads run.
    """
    pytest.importorskip("pyspark", reason="pip install 'samplehub[spark]'")
    import os
    import signal
    import subprocess
    import time

    from kills import SAMPLEHUB, catalog_snapshot, environment, open_home, stored_pixels_match

    from samplehub.fsck import check_repository
    from samplehub.repository import Repository
    from samplehub.sources import SourceSpec

    reference = Repository.open([f"home={tmp_path / 'threads'}"])
    reference.ingest(SourceSpec(name="ucm", uri=str(ucmerced_subset)))
    home = tmp_path / "spark"
    overrides = ["executor=spark", "executor.spark_master='local[2]'", "executor.batch_size=8"]
    command = [SAMPLEHUB, "ingest", str(ucmerced_subset), "--name", "ucm",
               *[arg for o in overrides for arg in ("--set", o)]]
    env = environment(home, overrides)
    parts = home / "catalog" / "samples" / "dataset=ucm"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(parts.glob("part-*.parquet")) and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before any executor wrote its part"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # the driver only, as an OOM kill would
        process.wait()
        written = len(list(parts.glob("part-*.parquet")))
    finally:
        time.sleep(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its JVM and Python workers, if left
    assert written >= 1
    repo = open_home(home, overrides)
    assert repo.catalog.read("samples", "ucm").num_rows == 0, "nothing committed"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    repo = open_home(home, overrides)
    assert catalog_snapshot(repo, "ucm").equals(catalog_snapshot(reference, "ucm"))
    assert stored_pixels_match(repo, "ucm")
    assert check_repository(repo).clean
