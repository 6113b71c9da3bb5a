"""Feature jobs: encode a partition, index and prototype every feature, train the scene model."""

from dagster import AssetSelection, define_asset_job

from assets.features import image_features, ivfpq_index, label_prototypes, scene_model
from assets.partitions import dataset_partitions

features_job = define_asset_job(
    name="compute_features",
    selection=AssetSelection.assets(image_features),
    partitions_def=dataset_partitions,
    description="Encode one dataset partition's new samples with the current feature model.",
)

index_job = define_asset_job(
    name="index_features",
    selection=AssetSelection.assets(ivfpq_index, label_prototypes),
    description="Grow (or retrain) the IVF-PQ index and recompute the label prototypes.",
)

scene_model_job = define_asset_job(
    name="train_scene_model",
    selection=AssetSelection.assets(scene_model),
    description="Train the multi-label scene model on UC Merced multi-label and promote it.",
)
