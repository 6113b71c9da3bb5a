"""HIR jobs: train TKANet and ESFormer; land-cover statistics of one dataset partition."""

from dagster import AssetSelection, define_asset_job

from assets.hir import esformer_model, landcover_stats, tkanet_model
from assets.partitions import dataset_partitions

hir_training_job = define_asset_job(
    name="train_hir_models",
    selection=AssetSelection.assets(tkanet_model, esformer_model),
    description="Train TKANet and ESFormer (HIR paper); promote a run only if it wins.",
)

landcover_stats_job = define_asset_job(
    name="compute_landcover_stats",
    selection=AssetSelection.assets(landcover_stats),
    partitions_def=dataset_partitions,
    description="Land-cover statistics of one dataset partition by the champion ESFormer.",
)
