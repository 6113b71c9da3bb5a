"""Where the batch functions of ingestion run: a thread pool, or Spark executors.

DESIGN section 3: the compute backend is a config switch (``executor=threads`` or
``executor=spark``), never a code fork. Both map the same function over the same items:
Spark ships the function and its arguments (a source's spec and filesystem handle, the
catalog's and store's locations) to the executors with cloudpickle, and what comes back
must be small: executors write their outputs to the configured storage themselves
(:func:`samplehub.ingest.write_part`), and the driver only commits.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from samplehub.config import ExecutorConfig
from samplehub.errors import ConfigError, OptionalDependencyError

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")


def map_batch(fn: Callable[[T], R], items: Sequence[T], config: ExecutorConfig) -> list[R]:
    """``[fn(x) for x in items]`` on the configured executor, order kept."""
    if config.kind == "threads":
        if config.workers <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=config.workers) as pool:
            return list(pool.map(fn, items))
    if config.kind == "spark":
        context = spark_session(config.spark_master).sparkContext
        slices = max(1, min(len(items), context.defaultParallelism * 2))
        return context.parallelize(list(items), slices).map(fn).collect()  # type: ignore[no-any-return]
    raise ConfigError(f"executor.kind: unknown executor {config.kind!r}; use threads or spark")


def map_arrow(
    fn: Callable[[pa.Table, S], R],
    table: pa.Table,
    shared: S,
    config: ExecutorConfig,
    rows_per_part: int,
) -> list[R]:
    """``fn(part, shared)`` over row slices of ``table`` on Spark executors (``mapInArrow``).

    ``shared`` (a model, say) is broadcast, so each executor deserializes it once and its
    Python workers keep it across tasks, rather than each task shipping its own copy. The
    table goes to Spark as Arrow, in about two partitions per core, each split further into
    Arrow batches of at most ``rows_per_part`` rows; ``fn`` runs once per batch and what it
    returns comes back pickled, so it must be small (where an output was written, not the
    output).
    """
    import pickle

    spark = spark_session(config.spark_master)
    context = spark.sparkContext
    shared_copy = context.broadcast(shared)
    partitions = max(1, min(-(-table.num_rows // rows_per_part), context.defaultParallelism * 2))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        value = shared_copy.value
        for batch in batches:
            out = fn(pa.Table.from_batches([batch]), value)
            yield pa.RecordBatch.from_pydict({"result": [pickle.dumps(out)]})

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(rows_per_part))
    frame = spark.createDataFrame(table).repartition(partitions)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pyspark's pandas-version notice
            rows = frame.mapInArrow(run, "result binary").collect()
    finally:
        shared_copy.unpersist()
    return [pickle.loads(row.result) for row in rows]


def parallelism(config: ExecutorConfig) -> int:
    """How many items the executor works on at once: its threads, or the cluster's cores."""
    if config.kind == "spark":
        return int(spark_session(config.spark_master).sparkContext.defaultParallelism)
    return max(1, config.workers)


def spark_session(master: str) -> Any:
    """A SparkSession on ``master`` (``local[*]`` in tests, a cluster URL at scale).

    The process's session is reused while it runs on ``master``. One on another master is
    stopped first: ``getOrCreate`` would hand it back, and the work would run where it
    was not asked to.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise OptionalDependencyError("pyspark", "spark") from exc
    # Python workers must run this interpreter, which has samplehub and its dependencies;
    # local mode reads the worker interpreter from the environment, not from the config.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # A quiet console: Spark's driver logs errors only, and draws no stage bars over ours.
    logging_config = Path(__file__).with_name("spark-log4j2.properties")
    builder = (
        SparkSession.builder.master(master)
        .appName("samplehub")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.extraJavaOptions",
                f"-Dlog4j2.configurationFile=file:{logging_config}")
        # The session is kept for the process's later runs; idle, it must give the
        # cluster's cores back, or another process's run waits on them while holding
        # what this one waits for (a deadlock seen under the Dagster daemon's pool).
        .config("spark.dynamicAllocation.enabled", "true")
        .config("spark.dynamicAllocation.shuffleTracking.enabled", "true")
        .config("spark.dynamicAllocation.executorIdleTimeout", "5s")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark's pandas-version notice
        session = builder.getOrCreate()
        if session.sparkContext.master != master:
            session.stop()
            session = builder.getOrCreate()
    return session
