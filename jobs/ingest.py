"""The on-demand ingestion job: ``samples`` and ``label_tree`` of one dataset partition."""

from dagster import AssetSelection, define_asset_job

from assets.ingest import label_tree, samples
from assets.partitions import dataset_partitions

ingest_job = define_asset_job(
    name="ingest_dataset",
    selection=AssetSelection.assets(samples, label_tree),
    partitions_def=dataset_partitions,
    description="Ingest one dataset partition: catalog rows, Zarr images, label tree.",
)
