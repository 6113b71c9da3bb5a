"""Dynamic partitions, one per dataset, and the compute-heavy assets' concurrency pool.

Partitions are added by the new-dataset sensor or the demo.
"""

from dagster import DynamicPartitionsDefinition

# The instance stores dynamic partition keys under this name.
DATASET_PARTITIONS = "dataset"
dataset_partitions = DynamicPartitionsDefinition(name=DATASET_PARTITIONS)

# Ingest, feature extraction, index building and model training each use every core;
# the instance limits this pool (``concurrency.pools`` in infra/dagster.yaml) so a batch
# of new datasets queues instead of running side by side on a small machine.
HEAVY_POOL = "samplehub_heavy"
