"""Ingestion from the loopback S3 server: same rows and pixels as from local disk."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_BUCKET, S3Server, Where

from samplehub.config import load_config
from samplehub.ingest import IngestReport
from samplehub.repository import Repository


def ingest_rows(
    repo: Repository, where: Where, name: str, *parts: str, **kw: object
) -> tuple[IngestReport, pd.DataFrame]:
    report = repo.ingest(where.spec(name, *parts, **kw))
    frame = repo.catalog.samples(name).sort_values("relpath").reset_index(drop=True)
    return report, frame


def test_fixture_tree_ingests_identically_from_disk_and_s3(
    home: Path, where: Where
) -> None:
    repo = Repository(load_config())
    report, frame = ingest_rows(repo, where, "tree", "folder_tree")
    assert report.added == report.found == 12 and not report.quarantined
    assert repo.ingest(where.spec("tree", "folder_tree")).added == 0
    assert frame["uri"].str.startswith("s3://" if where.name == "s3" else "/").all()
    assert frame["labels"].map(len).eq(1).all()


@pytest.mark.parametrize(
    ("name", "parts", "kind", "options", "samples", "bands"),
    [
        ("ucmerced", ("ucmerced", "Images"), "folder_tree", {}, 10, 3),
        ("ucmerced_multilabel", ("ucmerced_multilabel", "LandUse_Multilabeled.txt"),
         "multilabel_manifest", {"images": f"s3://{REAL_BUCKET}/ucmerced/Images"}, 10, 3),
        ("bigearthnet", ("bigearthnet_examples",), "bigearthnet", {}, 2, None),
        ("rgbn", ("multispectral_rgbn",), "geotiff", {"bands": ["red", "green", "blue", "nir"]},
         3, 4),
    ],
)
def test_real_subset_ingests_from_s3(
    home: Path, s3_server: S3Server, real_bucket: str, shared_data: Path,
    name: str, parts: tuple[str, ...], kind: str, options: dict[str, object],
    samples: int, bands: int | None,
) -> None:
    repo = Repository(load_config())
    s3 = Where("s3", f"s3://{real_bucket}", s3_server.storage_options())
    report, frame = ingest_rows(repo, s3, name, *parts, kind=kind, options=options)
    assert report.total == samples
    if bands is not None:
        assert set(frame["bands"].map(len)) == {bands}
    if name in ("bigearthnet", "rgbn"):
        assert frame["georeferenced"].all()
    row = frame.iloc[0]
    _, pixels = repo.image(int(row["sample_id"]))
    local = shared_data.joinpath(*parts[:-1] if name == "ucmerced_multilabel" else parts)
    assert pixels.shape == (len(row["bands"]), row["height"], row["width"])
    if name == "ucmerced":
        from PIL import Image

        reference = np.asarray(Image.open(local / row["relpath"])).transpose(2, 0, 1)
        assert np.array_equal(pixels, reference)
