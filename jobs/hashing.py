"""Hashing jobs: train both hash models; code one dataset partition; rebuild the Hamming index."""

from dagster import AssetSelection, define_asset_job

from assets.hashing import dmch_model, duwh_model, hash_codes, hash_index
from assets.partitions import dataset_partitions

hash_training_job = define_asset_job(
    name="train_hash_models",
    selection=AssetSelection.assets(dmch_model, duwh_model),
    description="Train DMCH and DUWH on the stored features; promote a run only if it wins.",
)

hash_codes_job = define_asset_job(
    name="compute_hash_codes",
    selection=AssetSelection.assets(hash_codes),
    partitions_def=dataset_partitions,
    description="Code one dataset partition with the champion (backfill to recompute all).",
)

hash_index_job = define_asset_job(
    name="index_hash_codes",
    selection=AssetSelection.assets(hash_index),
    description="Rebuild the Hamming index over every dataset's codes.",
)
