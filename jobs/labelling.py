"""Labelling job: every stage of the unsupervised labelling pipeline for one dataset partition."""

from dagster import AssetSelection, define_asset_job

from assets.labelling import chip_embeddings, fcm_targets, gnn_model, segment_graphs, unet_model
from assets.partitions import dataset_partitions

labelling_job = define_asset_job(
    name="build_labelling_view",
    selection=AssetSelection.assets(fcm_targets, unet_model, segment_graphs, gnn_model,
                                    chip_embeddings),
    partitions_def=dataset_partitions,
    description="FCM, U-Net, SLIC graphs, GNN, chip similarity and UMAP of one tiles dataset.",
)
