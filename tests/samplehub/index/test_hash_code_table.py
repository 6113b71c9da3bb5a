"""The ``hash_codes`` table: a table written when its model-version column was ``model``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from deltalake import write_deltalake

from samplehub.catalog import Catalog
from samplehub.index.hamming import hash_code_ids, hash_code_table, load_hash_codes


def codes_of(ids: list[int], version: str, seed: int) -> tuple[np.ndarray, object]:
    """Seeded 16-bit codes of ``ids`` as ``hash_codes`` rows, with the codes."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((len(ids), 16)).astype(np.float32)
    codes = (values > 0).astype(np.uint8)
    return codes, hash_code_table(np.array(ids, np.int64), "tree", version, codes, values)


def test_legacy_model_column_reads_and_is_renamed_on_next_write(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "catalog"))
    codes, table = codes_of([3, 1, 2], "dmch-16-v1", seed=0)
    legacy = table.rename_columns(
        ["model" if c == "model_version" else c for c in table.column_names]
    )
    write_deltalake(catalog.uri("hash_codes"), legacy, partition_by=["dataset"])
    assert catalog.missing_columns("hash_codes") == []

    assert sorted(hash_code_ids(catalog, "tree", "dmch-16-v1").tolist()) == [1, 2, 3]
    assert hash_code_ids(catalog, "tree", "dmch-16-v2").size == 0
    ids, packed, _ = load_hash_codes(catalog, "dmch-16-v1")
    assert ids.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1), codes[[1, 2, 0]])
    assert "model_version" in catalog.read("hash_codes").column_names

    _, newer = codes_of([4], "dmch-16-v2", seed=1)
    catalog.append("hash_codes", newer)
    stored = catalog.table("hash_codes")
    assert stored is not None
    names = stored.schema().to_arrow().names
    assert "model_version" in names and "model" not in names
    assert load_hash_codes(catalog, "dmch-16-v1")[0].tolist() == [1, 2, 3]
    assert load_hash_codes(catalog, "dmch-16-v2")[0].tolist() == [4]
