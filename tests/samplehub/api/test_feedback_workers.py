"""Twenty feedback posts at once across ``samplehub serve`` workers lose and duplicate nothing.

The real server (uvicorn supervisor and four worker processes, an API token) over a small
real repository (``build_real_repository`` with 10 images per class: UC Merced golf
course, river and freeway, EuroSAT River and Highway) that has no ``feedback`` table yet:
the posts race to create it and to append to it from every worker
(``tests/writers.py::feedback_storm``). Four workers, not two: without the feedback lock
and the catalog's commit retries, two in eight runs with four workers lost a post (its
append lost the table's creation, ``CommitFailedError``), none in five with two, on two
cores. ``test_catalog_store.py`` races the commits themselves, without a server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from asset_jobs import REAL_OVERRIDES, build_real_repository
from writers import feedback_storm

pytestmark = pytest.mark.integration

# Model input at 64 px and small batches: the build takes seconds, not a minute.
OVERRIDES = [*REAL_OVERRIDES, "model.resolution=64", "executor.batch_size=16"]
POSTS, PER_POST, WORKERS = 20, 3, 4


def test_concurrent_feedback_posts_across_workers_lose_and_duplicate_nothing(
    shared_data: Path, tmp_path: Path
) -> None:
    from assets.resources import SampleHubResource

    overrides = [*OVERRIDES, f"home={tmp_path / 'home'}"]
    build_real_repository(SampleHubResource(overrides=overrides), shared_data,
                          tmp_path / "images", per_class=10)
    row = feedback_storm(tmp_path / "home", overrides, ("river", "golf course"),
                         posts=POSTS, workers=WORKERS, per_post=PER_POST)
    assert row["table_created"], "the storm started without a feedback table"
    assert row["answered"] == {"200": POSTS}, row["failed"]
    assert row["rows"] == row["rows_posted"] == POSTS * PER_POST, row
    assert row["lost"] == row["duplicated"] == row["unexpected"] == 0, row
    assert row["workers_answering"] == WORKERS, row["posts_by_worker"]
    # every worker's next query leaves out what any worker recorded as rejected
    assert row["workers_queried"] == WORKERS, row
    assert row["rejected_hits_before"] > 0 and row["rejected_served_after"] == 0, row
    assert row["fsck_clean"] and row["exit_codes"] == [0], row
