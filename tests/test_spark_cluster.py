"""``loopback.spark_cluster``: a standalone master and two workers run tasks in this venv."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from loopback import spark_cluster

pytestmark = pytest.mark.integration


def test_spark_cluster_runs_tasks_on_both_workers_with_this_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # the driver names the workers' python
    from pyspark.sql import SparkSession

    # getOrCreate hands back a session an earlier test left running, whatever its master.
    if (active := SparkSession.getActiveSession()) is not None:
        active.stop()
    with spark_cluster(workers=2) as master:
        assert master.startswith("spark://127.0.0.1:")

        spark = (SparkSession.builder.master(master).appName("spark-cluster-test")
                 .config("spark.driver.host", "127.0.0.1")
                 .config("spark.executor.memory", "512m")
                 # pyspark's builder keeps options across sessions of one process: an earlier
                 # session's dynamic allocation would start executors only once tasks wait.
                 .config("spark.dynamicAllocation.enabled", "false").getOrCreate())
        try:
            def where(_: object) -> tuple[str, str]:
                import os
                import sys

                return sys.prefix, os.getcwd()  # an executor runs in its worker's work dir

            assert spark.sparkContext.master == master
            # Executors register one by one; quick tasks would all go to the first.
            registered = spark.sparkContext._jsc.sc().getExecutorMemoryStatus  # driver too
            deadline = time.monotonic() + 60
            while registered().size() < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert registered().size() == 3, "both workers' executors registered"
            rdd = spark.sparkContext.parallelize(range(8), 8)
            found = rdd.map(where).collect()
            assert rdd.sum() == 28
        finally:
            spark.stop()
    assert {prefix for prefix, _ in found} == {sys.prefix}
    assert {Path(cwd).parents[1].name for _, cwd in found} == {"work-0", "work-1"}
