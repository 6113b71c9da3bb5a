"""Run the shipped jobs in-process for test repositories: features, label graph, index.

Also the small real repository that the API tests and ``bench/soak.py``'s fuzz row serve.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import instance_for_test

# The small real repository: UC Merced golf course, river and freeway, EuroSAT River and
# Highway, 100 images each, plus UC Merced's multi-label annotation of the same images.
REAL_OVERRIDES = ["retrieval.pq_m=8"]  # the shipped feature model (224 px)
REAL_PICK = {"ucmerced": ("ucmerced/Images", ("golfcourse", "river", "freeway")),
             "eurosat": ("eurosat_rgb", ("River", "Highway"))}
REAL_PER_CLASS = 100


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


def build_real_repository(
    resource: Any, data: Path, images: Path, per_class: int = REAL_PER_CLASS
) -> None:
    """Ingest, encode, merge and index the small real repository into ``resource``'s home.

    Args:
        resource: the :class:`~assets.resources.SampleHubResource` (``REAL_OVERRIDES``).
        data: the real data root (``../shared/data``).
        images: where the picked images are copied (the sources' folders).
        per_class: images copied of each picked class (fewer for a quicker build).
    """
    from samplehub.sources import SourceSpec

    repo = resource.repository()
    for dataset, (folder, classes) in REAL_PICK.items():
        for name in classes:
            (images / dataset / name).mkdir(parents=True)
            for f in sorted((data / folder / name).iterdir())[:per_class]:
                shutil.copy(f, images / dataset / name / f.name)
        report = repo.ingest(SourceSpec(name=dataset, uri=str(images / dataset)))
        assert report.added == per_class * len(classes), report
    # The co-occurrences that associate labels (rows of images not copied are quarantined).
    report = repo.ingest(SourceSpec(
        name="ucmerced_multilabel", kind="multilabel_manifest",
        uri=str(data / "ucmerced_multilabel" / "LandUse_Multilabeled.txt"),
        options={"images": str(images / "ucmerced")}))
    assert report.total == 3 * per_class, report
    index_datasets(resource, [*REAL_PICK, "ucmerced_multilabel"])
