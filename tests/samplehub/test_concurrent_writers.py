"""Concurrent writers lose and duplicate nothing: real processes on one home at once.

Real UC Merced and EuroSAT images (``tests/writers.py`` has the scenarios).
"""

import shutil
from pathlib import Path

import pytest
from writers import run_scenarios

pytestmark = pytest.mark.integration

OVERRIDES = ["executor.batch_size=16", "model.resolution=64"]


def subset(source: Path, target: Path, per_class: int) -> Path:
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            shutil.copy(image, target / folder.name / image.name)
    return target


def test_concurrent_writers_lose_and_duplicate_nothing(shared_data: Path, tmp_path: Path) -> None:
    ucm = subset(shared_data / "ucmerced" / "Images", tmp_path / "ucm", 6)
    eurosat = subset(shared_data / "eurosat_rgb", tmp_path / "eurosat", 12)
    rows = {r["scenario"]: r for r in run_scenarios(ucm, eurosat, tmp_path / "work", OVERRIDES)}
    assert set(rows) == {"two_datasets", "same_dataset", "features_twice", "ingest_during_index",
                         "feedback_posts"}
    for row in rows.values():
        assert row["exit_codes"] == [0] * row["processes"], row
        assert row["lost"] == row["duplicated"] == 0, row
        assert row["fsck_clean"], row
    # The dataset lock serialized the two ingests of one dataset: one added, one found all.
    said = " ".join(" ".join(lines) for lines in rows["same_dataset"]["outputs"])
    assert f"added {rows['same_dataset']['expected_rows']['first']}," in said
    assert "added 0," in said
    assert rows["ingest_during_index"]["indexed"] == rows["features_twice"]["feature_rows_expected"]
    # feedback posted to both server workers at once: every post answered, each worker's
    # next query leaves the rejected samples out
    storm = rows["feedback_posts"]
    assert storm["answered"] == {"200": storm["posts"]} and storm["unexpected"] == 0, storm
    assert storm["workers_answering"] == storm["workers_queried"] == 2, storm
    assert storm["rejected_hits_before"] > 0 and storm["rejected_served_after"] == 0, storm
