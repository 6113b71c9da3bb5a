"""Where the pure batch functions of ingestion run: a thread pool, or Spark executors.

DESIGN section 3: the compute backend is a config switch (``executor=threads`` or
``executor=spark``), never a code fork. Both map the same function,
:func:`samplehub.ingest.read_entry`, over a batch of file entries; Spark ships the
source (its spec and filesystem handle) to the executors with cloudpickle and collects
the decoded records back to the driver, which writes the store and commits the catalog.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

from samplehub.config import ExecutorConfig
from samplehub.errors import ConfigError, OptionalDependencyError

T = TypeVar("T")
R = TypeVar("R")


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


@lru_cache(maxsize=2)
def spark_session(master: str) -> Any:
    """A SparkSession on ``master`` (``local[*]`` in tests, a cluster URL at scale)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise OptionalDependencyError("pyspark", "spark") from exc
    # Python workers must run this interpreter, which has samplehub and its dependencies;
    # local mode reads the worker interpreter from the environment, not from the config.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName("samplehub")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
