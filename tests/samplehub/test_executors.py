"""Executors: threads and Spark map the same pure batch function with the same result."""

from pathlib import Path

import pytest

from samplehub.config import ExecutorConfig, load_config
from samplehub.errors import ConfigError
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [1, 3])
def test_threads_keep_order(workers: int) -> None:
    from samplehub.executors import map_batch

    assert map_batch(square, list(range(20)), ExecutorConfig(workers=workers)) == [
        x * x for x in range(20)
    ]


def test_unknown_executor_names_the_key() -> None:
    from samplehub.executors import map_batch

    with pytest.raises(ConfigError, match=r"executor\.kind"):
        map_batch(square, [1], ExecutorConfig(kind="dask"))


@pytest.mark.integration
def test_spark_ingest_matches_thread_ingest(home: Path) -> None:
    pytest.importorskip("pyspark", reason="pip install 'samplehub[spark]'")
    spec = SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree"))
    threads = Repository(load_config())
    threads.ingest(spec)
    spark = Repository(
        load_config(
            ["executor=spark", "executor.spark_master='local[2]'", f"home={home / 'spark'}"]
        )
    )
    report = spark.ingest(spec)
    assert report.added == report.found == 12
    columns = ["sample_id", "relpath", "checksum", "content_hash", "width", "height", "labels"]
    ours = spark.catalog.samples("tree", columns=columns).sort_values("sample_id")
    theirs = threads.catalog.samples("tree", columns=columns).sort_values("sample_id")
    assert ours.astype(str).values.tolist() == theirs.astype(str).values.tolist()


@pytest.mark.integration
def test_a_session_on_another_master_is_replaced_not_reused() -> None:
    pytest.importorskip("pyspark", reason="pip install 'samplehub[spark]'")
    from samplehub.executors import spark_session

    first = spark_session("local[1]")
    assert spark_session("local[1]") is first
    second = spark_session("local[2]")
    try:
        assert second.sparkContext.master == "local[2]"
        assert second.sparkContext.defaultParallelism == 2
    finally:
        second.stop()
