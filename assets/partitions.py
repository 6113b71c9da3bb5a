"""Dynamic partitions: one per dataset, added by the new-dataset sensor or the demo."""

from dagster import DynamicPartitionsDefinition

dataset_partitions = DynamicPartitionsDefinition(name="dataset")
