"""Dynamic partitions, one per dataset (added by the new-dataset sensor or the demo), and
the concurrency pool of the compute-heavy assets."""

from dagster import DynamicPartitionsDefinition

dataset_partitions = DynamicPartitionsDefinition(name="dataset")

# Ingest, feature extraction, index building and model training each use every core;
# the instance limits this pool (``concurrency.pools`` in infra/dagster.yaml) so a batch
# of new datasets queues instead of running side by side on a small machine.
HEAVY_POOL = "samplehub_heavy"
