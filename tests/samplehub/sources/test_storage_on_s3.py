"""``storage=s3``: the catalog's Delta tables and the Zarr stores on the loopback S3 server.

All 2,100 real UC Merced images are ingested from local disk into a repository whose catalog
and image store live in a bucket of moto's S3 server; the shipped jobs then compute the
features, merge the label graph and build the index in-process, and the real query, the
builder and the export run against it. The settings are written once, in object_store's
spelling, and reach delta-rs, zarr/s3fs and boto3 each in its own (``ObjectStorage``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asset_jobs import index_datasets
from conftest import CREDENTIALS, S3Server
from PIL import Image

from samplehub.errors import ConfigError
from samplehub.object_storage import ObjectStorage
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

BUCKET = "samplehub-storage"


def test_settings_are_translated_for_each_client() -> None:
    storage = ObjectStorage.parse({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "region": "eu-west-1",
                                   "key": "k", "AWS_SECRET_ACCESS_KEY": "s", "token": None})
    assert storage.for_delta() == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ALLOW_HTTP": "true"}
    assert storage.for_fsspec() == {
        "key": "k", "secret": "s",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}}
    assert storage.for_boto3() == {
        "endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1",
        "aws_access_key_id": "k", "aws_secret_access_key": "s"}
    assert ObjectStorage.parse({}).for_fsspec() == {} == ObjectStorage.parse(None).for_delta()
    with pytest.raises(ConfigError, match=r"storage\.storage_options\.AWS_ENDPOINT: unknown"):
        ObjectStorage.parse({"AWS_ENDPOINT": "x"})
    with pytest.raises(ConfigError, match="endpoint_url is given twice"):
        ObjectStorage.parse({"AWS_ENDPOINT_URL": "a", "endpoint_url": "b"})


@pytest.mark.integration
def test_ingest_features_index_query_build_and_export_run_on_s3(
    home: Path, tmp_path: Path, s3_server: S3Server, shared_data: Path
) -> None:
    from assets.resources import SampleHubResource
    from samplehub.export import build_dataset, export_dataset, parse_spec
    from samplehub.retrieval.query import run_query
    from samplehub.retrieval.types import QuerySpec

    s3_server.client.create_bucket(Bucket=BUCKET)
    overrides = [
        "storage=s3", f"storage.catalog_uri=s3://{BUCKET}/catalog",
        f"storage.store_uri=s3://{BUCKET}/zarr",
        f"+storage.storage_options.AWS_ACCESS_KEY_ID={CREDENTIALS['key']}",
        f"+storage.storage_options.AWS_SECRET_ACCESS_KEY={CREDENTIALS['secret']}",
        f"storage.storage_options.AWS_ENDPOINT_URL={s3_server.endpoint_url}",
        "model.resolution=64", "model.dim=64", "retrieval.pq_m=8",
    ]
    resource = SampleHubResource(overrides=overrides)
    repo = resource.repository()
    images = shared_data / "ucmerced" / "Images"
    report = repo.ingest(SourceSpec(name="ucmerced", uri=str(images)))
    assert report.added == 2100 and not report.quarantined
    logged = index_datasets(resource, ["ucmerced"])
    assert "ucmerced" in logged and CREDENTIALS["secret"] not in logged, "no secret in logs"
    assert CREDENTIALS["key"] not in logged

    keys = {o["Key"].split("/")[0] for page in s3_server.client.get_paginator(
        "list_objects_v2").paginate(Bucket=BUCKET) for o in page.get("Contents", [])}
    assert keys == {"catalog", "zarr"}
    assert not (home / "catalog").exists() and not (home / "zarr").exists(), "nothing local"

    repo = Repository.open(overrides)  # a second process's view: everything from the bucket
    row = repo.catalog.samples("ucmerced").sort_values("relpath").iloc[0]
    _, pixels = repo.image(int(row["sample_id"]))
    source = np.asarray(Image.open(images / row["relpath"])).transpose(2, 0, 1)
    assert np.array_equal(pixels, source)

    result = run_query(repo, QuerySpec(labels=("golf course",), k=20))
    assert len(result.exact) == 100 and {h.dataset for h in result.exact} == {"ucmerced"}
    assert len(result.supplementary) == 20

    spec = parse_spec({"name": "golf", "labels": ["golf course"],
                       "split": {"ratios": {"train": 0.8, "val": 0.2}, "seed": 0}})
    logical = build_dataset(repo, spec)
    assert logical.counts()["golf course"]["exact"] == 100
    export = export_dataset(repo, logical, tmp_path / "golf", formats=("imagefolder",))
    assert export.samples == len(logical.members) >= 100
    images_out = [p for p in (tmp_path / "golf").rglob("*") if p.suffix in (".png", ".tif")]
    assert len(images_out) == export.samples
