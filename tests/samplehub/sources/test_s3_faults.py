"""S3 faults mid-ingest: retried with backoff, or one clear error and nothing half-committed.

Real UC Merced images (8 per class) are ingested into a catalog and a store on moto's S3
server behind ``tests/fault_proxy.py``: once with a tenth of all requests failing (500,
503 SlowDown, connection resets), once with the server dying part-way through.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import CREDENTIALS, S3Server
from fault_proxy import FaultPlan, FaultProxy, s3_overrides

from samplehub.errors import StorageError
from samplehub.fsck import check_repository
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

pytestmark = pytest.mark.integration
PER_CLASS = 8


@pytest.fixture
def images(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ucm"
    for folder in sorted((shared_data / "ucmerced" / "Images").iterdir()):
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:PER_CLASS]:
            shutil.copy(image, root / folder.name / image.name)
    return root


def on_s3(endpoint: str, bucket: str, retries: int, budget_s: float) -> list[str]:
    return [*s3_overrides(endpoint, bucket, CREDENTIALS, retries, budget_s),
            "executor.batch_size=32"]


def test_a_flaky_s3_is_retried_and_the_ingest_completes(
    home: Path, s3_server: S3Server, images: Path
) -> None:
    s3_server.client.create_bucket(Bucket="flaky")
    with FaultProxy(s3_server.endpoint_url, FaultPlan(rate=0.1, seed=3)) as proxy:
        repo = Repository.open(on_s3(proxy.endpoint_url, "flaky", retries=10, budget_s=60))
        report = repo.ingest(SourceSpec(name="ucm", uri=str(images)))
        assert report.added == 21 * PER_CLASS
        assert sum(proxy.plan.injected.values()) >= 10, proxy.plan.injected
        assert set(proxy.plan.injected) == {"error_500", "slowdown_503", "reset"}
        assert check_repository(repo).clean
        rows = repo.catalog.samples("ucm")
        row, pixels = repo.image(int(rows["sample_id"].iloc[-1]))
        assert pixels.shape == (3, row["height"], row["width"])


def test_a_dead_s3_fails_cleanly_and_a_later_run_completes(
    home: Path, s3_server: S3Server, images: Path
) -> None:
    s3_server.client.create_bucket(Bucket="dies")
    plan = FaultPlan(die_after=300)
    with FaultProxy(s3_server.endpoint_url, plan) as proxy:
        overrides = on_s3(proxy.endpoint_url, "dies", retries=2, budget_s=5)
        repo = Repository.open(overrides)
        with pytest.raises(StorageError) as failure:
            repo.ingest(SourceSpec(name="ucm", uri=str(images)))
        said = str(failure.value)
        assert "s3://dies" in said, said
        assert CREDENTIALS["secret"] not in said
        proxy.up()
        repo = Repository.open(overrides)
        committed = len(repo.catalog.sample_ids("ucm"))
        assert 0 < committed < 21 * PER_CLASS, "it died part-way, after some commits"
        findings = check_repository(repo).findings
        assert all(f.reclaimable for f in findings), "nothing half-committed"
        report = repo.ingest(SourceSpec(name="ucm", uri=str(images)))
        assert report.added == 21 * PER_CLASS - committed
        assert check_repository(repo).clean
