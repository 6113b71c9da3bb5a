"""Run the shipped jobs in-process for test repositories: features, label graph, index."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import instance_for_test


def index_datasets(resource: object, datasets: Sequence[str]) -> str:
    """``compute_features`` per dataset, then ``build_label_graph`` and ``index_features``,
    on a throwaway Dagster instance; returns the runs' event logs as one text.

    Args:
        resource: the :class:`~assets.resources.SampleHubResource` the runs use.
        datasets: ingested dataset names (their partitions are added here).
    """
    from assets.partitions import dataset_partitions
    from orchestration.definitions import defs

    with instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, list(datasets))
        jobs = [("compute_features", d) for d in datasets]
        for job, partition in [*jobs, ("build_label_graph", None), ("index_features", None)]:
            run = defs.resolve_job_def(job).execute_in_process(
                partition_key=partition, instance=instance, resources={"samplehub": resource})
            assert run.success, (job, partition)
        return " ".join(str(event) for run in instance.get_runs()
                        for event in instance.all_logs(run.run_id))
