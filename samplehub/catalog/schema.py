"""Arrow schemas of the catalog's Delta tables (DESIGN section 4)."""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
LABELS = pa.list_(pa.string())

SAMPLES = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("relpath", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("labels", LABELS),
        pa.field("label_path", LABELS),
        pa.field("unified_labels", LABELS),
        pa.field("split", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("bands", LABELS),
        pa.field("dtype", pa.string()),
        pa.field("sensor", pa.string()),
        pa.field("gsd", pa.float64()),
        pa.field("crs", pa.string()),
        pa.field("georeferenced", pa.bool_()),
        pa.field("minx", pa.float64()),
        pa.field("miny", pa.float64()),
        pa.field("maxx", pa.float64()),
        pa.field("maxy", pa.float64()),
        pa.field("footprint", pa.binary()),
        pa.field("hilbert", pa.int64()),
        pa.field("time", TIMESTAMP),
        pa.field("checksum", pa.string()),
        pa.field("zarr_array", pa.string()),
        pa.field("zarr_index", pa.int64()),
        pa.field("ingested_at", TIMESTAMP),
        pa.field("content_hash", pa.string()),
    ]
)
"""``checksum`` hashes the file bytes; ``content_hash`` the decoded pixels
(:func:`samplehub.records.content_hash`), so one image shipped by two datasets, even
encoded differently, has one ``content_hash`` (DESIGN sections 4-5). ``content_hash`` is
last because catalogs written before it gain it as an appended column
(:meth:`samplehub.catalog.Catalog.add_missing_columns`); their rows hold null until the
dataset is ingested again."""

QUARANTINE = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("relpath", pa.string(), nullable=False),
        pa.field("uri", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("at", TIMESTAMP),
    ]
)

DATASETS = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("source_uri", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("platform", pa.string()),
        pa.field("licence", pa.string()),
        pa.field("citation", pa.string()),
        pa.field("label_tree", pa.string()),
        pa.field("n_found", pa.int64()),
        pa.field("n_samples", pa.int64()),
        pa.field("n_labels", pa.int64()),
        pa.field("n_quarantined", pa.int64()),
        pa.field("version", pa.int64()),
        pa.field("updated_at", TIMESTAMP),
    ]
)

# One row per (sample, model version): the multi-scale image feature of main paper 3.4.2.
VECTOR = pa.list_(pa.float32())

FEATURES = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("vector", VECTOR, nullable=False),
        pa.field("computed_at", TIMESTAMP),
    ]
)

# K-means centres of each label's features (main paper 3.4.2), partitioned by model version.
PROTOTYPES = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("prototype_id", pa.int32(), nullable=False),
        pa.field("vector", VECTOR, nullable=False),
        pa.field("n_members", pa.int64(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("computed_at", TIMESTAMP),
    ]
)

# One row per (sample, hash model version): DMCH Eq. 1 / DUWH Eq. 2 codes packed 8 bits per
# byte (most significant first) and the pre-quantization values that DMCH Eq. 7 re-ranks on.
HASH_CODES = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("bits", pa.binary(), nullable=False),
        pa.field("values", VECTOR, nullable=False),
        pa.field("computed_at", TIMESTAMP),
    ]
)

# One row per (sample, ESFormer version): the land-cover class distribution X of HIR Eq. 1
# (``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``), classes in the order
# of the model's ``classes`` tag.
LANDCOVER_STATS = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("proportions", VECTOR, nullable=False),
        pa.field("computed_at", TIMESTAMP),
    ]
)

RENAMED_COLUMNS: dict[str, dict[str, str]] = {"hash_codes": {"model": "model_version"}}
"""Columns renamed after tables were written, ``{table: {old name: new name}}``.

A stored table that still has an old name reads as if it had the new one, and its next
write rewrites it under the new name (:meth:`samplehub.catalog.Catalog.rename_legacy_columns`).
``hash_codes`` called its model-version column ``model`` before it took the features
table's name ``model_version``."""

FEEDBACK = pa.schema(
    [
        pa.field("spec_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("who", pa.string()),
        pa.field("at", TIMESTAMP),
    ]
)
