"""Arrays written to the catalog's list columns read back unchanged."""

import numpy as np
import pyarrow as pa

from samplehub.catalog import schema
from samplehub.catalog.vectors import sample_rows, vector_column, vector_rows


def test_vector_column_round_trips_across_chunks() -> None:
    xb = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    column = vector_column(xb)
    assert column.type == schema.VECTOR
    assert np.array_equal(vector_rows(pa.chunked_array([column[:3], column[3:]])), xb)


def test_empty_vectors_read_as_zero_by_zero() -> None:
    assert len(vector_column(np.zeros((0, 0), np.float32))) == 0
    assert vector_rows(pa.chunked_array([], type=schema.VECTOR)).shape == (0, 0)


def test_sample_rows_match_the_features_schema() -> None:
    xb = np.ones((2, 3), np.float32)
    table = sample_rows(np.array([4, 9]), "tree", "v1", {"vector": vector_column(xb)})
    assert table.column_names == schema.FEATURES.names
    assert table.column("model_version").to_pylist() == ["v1", "v1"]
