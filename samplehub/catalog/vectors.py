"""Arrays in the catalog's list columns (:data:`samplehub.catalog.schema.VECTOR`).

The ``features`` table keeps one vector per (sample, model version), ``hash_codes`` the
pre-quantization values beside the packed codes and ``prototypes`` each label's centres;
all are written from and read back into 2-D arrays here, and the first two are keyed by
sample and model version alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from samplehub.catalog import schema
from samplehub.catalog.delta import Catalog


def vector_column(x: np.ndarray) -> pa.ListArray:
    """The rows of ``x`` (n, d) as a ``VECTOR`` column: n lists of d float32 values."""
    n, d = x.shape
    return pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * np.int32(d)),
        pa.array(np.ascontiguousarray(x, dtype=np.float32).ravel()),
    )


def vector_rows(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A ``VECTOR`` column of n lists of d values as an (n, d) float32 array.

    An empty column reads as a (0, 0) array.
    """
    if len(column) == 0:
        return np.zeros((0, 0), np.float32)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(len(column), -1)


def stored_sample_ids(catalog: Catalog, table: str, dataset: str, model_version: str) -> np.ndarray:
    """Ids (int64) of ``dataset`` that already have rows of ``model_version`` in ``table``."""
    rows = catalog.read(
        table,
        dataset,
        columns=["sample_id"],
        filter_expression=pc.field("model_version") == model_version,
    )
    return rows.column("sample_id").to_numpy().astype(np.int64)


def sample_rows(
    ids: np.ndarray, dataset: str, model_version: str, columns: dict[str, pa.Array]
) -> pa.Table:
    """Rows of a table keyed by sample and model version (``features``, ``hash_codes``).

    Args:
        ids: sample ids (n,).
        dataset: the dataset of every row.
        model_version: the model version of every row.
        columns: the table's own columns, n values each, in schema order.

    Returns:
        ``sample_id``, ``dataset``, ``model_version``, ``columns``, then ``computed_at`` (now).
    """
    n = len(ids)
    return pa.table(
        {
            "sample_id": pa.array(ids, pa.int64()),
            "dataset": pa.array([dataset] * n, pa.string()),
            "model_version": pa.array([model_version] * n, pa.string()),
            **columns,
            "computed_at": pa.array([datetime.now(UTC)] * n, schema.TIMESTAMP),
        }
    )
