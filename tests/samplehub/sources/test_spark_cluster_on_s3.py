"""``executor=spark`` on a real cluster: a standalone master and two one-core workers on
loopback, storage on the loopback S3 server, all 2,100 real UC Merced images.

Ingest, features and the IVF-PQ build run through ``spark://127.0.0.1:PORT``: executors
decode and write pixels and catalog part files to the bucket, encode features with the
broadcast model, and build index shards there; the driver only commits and merges. The
result is checked against the in-process threads run on local disk: the same catalog rows,
the same pixels, the same vectors (float tolerance) and the same search answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import CREDENTIALS, S3Server
from kills import catalog_snapshot, feature_snapshot
from loopback import spark_cluster

from samplehub.executors import spark_session
from samplehub.feature_store import compute_features
from samplehub.index.ivfpq import search
from samplehub.index.lifecycle import load_ivfpq_index, update_ivfpq_index
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

pytestmark = pytest.mark.integration

BUCKET = "samplehub-cluster"
# Small features keep the run short; the comparison does not depend on their size.
MODEL = ["model.resolution=64", "model.dim=64", "retrieval.pq_m=8"]


@pytest.fixture
def cluster() -> Iterator[str]:
    pytest.importorskip("pyspark", reason="pip install 'samplehub[spark]'")
    with spark_cluster(workers=2, cores=1) as master:
        try:
            yield master
        finally:
            spark_session(master).stop()


def run_all(repo: Repository, images: Path) -> None:
    report = repo.ingest(SourceSpec(name="ucmerced", uri=str(images)))
    assert report.added == 2100 and not report.quarantined
    assert compute_features(repo, "ucmerced").computed == 2100
    assert update_ivfpq_index(repo).ntotal == 2100


def test_ingest_features_and_index_on_a_cluster_match_the_threads_run(
    home: Path, s3_server: S3Server, shared_data: Path, cluster: str
) -> None:
    images = shared_data / "ucmerced" / "Images"
    # One encoding thread, as each executor task has: under bf16 autocast the kernels'
    # rounding follows the thread count, so equal threads give equal vectors.
    threads = Repository.open([*MODEL, f"home={home / 'threads'}", "model.threads=1"])
    run_all(threads, images)

    s3_server.client.create_bucket(Bucket=BUCKET)
    spark = Repository.open([
        *MODEL, f"home={home / 'spark'}", "executor=spark", f"executor.spark_master='{cluster}'",
        "storage=s3", f"storage.catalog_uri=s3://{BUCKET}/catalog",
        f"storage.store_uri=s3://{BUCKET}/zarr",
        f"+storage.storage_options.AWS_ACCESS_KEY_ID={CREDENTIALS['key']}",
        f"+storage.storage_options.AWS_SECRET_ACCESS_KEY={CREDENTIALS['secret']}",
        f"storage.storage_options.AWS_ENDPOINT_URL={s3_server.endpoint_url}",
    ])
    run_all(spark, images)

    assert catalog_snapshot(spark, "ucmerced").equals(catalog_snapshot(threads, "ucmerced"))
    ours, theirs = spark.store.dataset("ucmerced"), threads.store.dataset("ucmerced")
    rows = spark.catalog.read("samples", "ucmerced", columns=["zarr_array", "zarr_index"])
    for key in set(rows.column("zarr_array").to_pylist()):
        at = np.sort(rows.filter(rows.column("zarr_array").to_numpy(zero_copy_only=False) == key)
                     .column("zarr_index").to_numpy())
        assert np.array_equal(ours.images(key, at), theirs.images(key, at)), key
    assert ours.row_counts() == theirs.row_counts()

    (ids, xb), (ids_t, xb_t) = feature_snapshot(spark, "ucmerced"), feature_snapshot(threads,
                                                                                     "ucmerced")
    assert np.array_equal(ids, ids_t) and np.allclose(xb, xb_t, atol=1e-6)

    index, reference = load_ivfpq_index(spark), load_ivfpq_index(threads)
    assert index.params == reference.params and index.ntotal == reference.ntotal
    queries = xb_t[:: len(xb_t) // 200][:200]
    _, found = search(index, queries, 50, 8, 4)
    _, expected = search(reference, queries, 50, 8, 4)
    assert (found == expected).mean() >= 0.999  # ties between equal distances may swap
    listed = s3_server.client.list_objects_v2(Bucket=BUCKET, Prefix="catalog/_scratch/")
    assert not listed.get("Contents"), "the index shards are removed once merged"
