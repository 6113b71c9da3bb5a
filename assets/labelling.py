"""Unsupervised labelling assets, one per pipeline stage (DESIGN.md section 5).

``samples[dataset] -> fcm_targets -> unet_model -> segment_graphs -> gnn_model ->
chip_embeddings``, each partitioned by dataset. Paper:
``../shared/papers/unsupervised-labelling-cnn-gnn.txt``; the work lives in
:mod:`samplehub.labelling.pipeline`. Partitions not listed in ``labelling.datasets`` are
recorded as skipped (with a fixed data version, so nothing downstream re-runs for them).

Each stage is automated like the other per-dataset assets: a new ``tiles`` dataset listed in
``labelling.datasets`` flows to a labelling view with nobody launching a run. The
``build_labelling_view`` job runs the chain on request.
"""

from collections.abc import Callable

from dagster import AssetExecutionContext, DataVersion, MaterializeResult, asset

from assets.automation import json_digest, per_dataset
from assets.ingest import samples
from assets.partitions import HEAVY_POOL, dataset_partitions
from assets.resources import SampleHubResource
from samplehub.labelling.pipeline import (
    StageReport,
    applies_to,
    build_segment_graphs,
    compute_chip_embeddings,
    fit_fcm_targets,
    train_gnn_model,
    train_unet_model,
)
from samplehub.repository import Repository

Stage = Callable[[Repository, str], StageReport]


def run_stage(
    context: AssetExecutionContext, hub: SampleHubResource, stage: Stage
) -> MaterializeResult:
    """Run one stage on the partition's dataset; the report's facts become the metadata."""
    repo, dataset = hub.repository(), context.partition_key
    if not applies_to(repo, dataset):
        context.log.info(f"{dataset} is not in labelling.datasets; skipped")
        return MaterializeResult(metadata={"skipped": "not in labelling.datasets"},
                                 data_version=DataVersion("skipped"))
    report = stage(repo, dataset)
    facts = {k: v if isinstance(v, int | float | str) else str(v) for k, v in report.facts.items()}
    return MaterializeResult(metadata={**facts, "seconds": round(report.seconds, 2)},
                             data_version=DataVersion(json_digest(report.facts)))


@asset(
    partitions_def=dataset_partitions,
    deps=[samples],
    group_name="labelling",
    kinds={"numpy"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(),
)
def fcm_targets(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """Fuzzy C-means centres on the training chips' pixels (paper 2.2): the U-Net's targets."""
    return run_stage(context, samplehub, fit_fcm_targets)


@asset(
    partitions_def=dataset_partitions,
    deps=[fcm_targets],
    group_name="labelling",
    kinds={"pytorch", "mlflow"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(),
)
def unet_model(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """The U-Net (paper 2.4) trained on the memberships, registered ``labelling-unet-<ds>``."""
    return run_stage(context, samplehub, train_unet_model)


@asset(
    partitions_def=dataset_partitions,
    deps=[unet_model],
    group_name="labelling",
    kinds={"numpy"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(),
)
def segment_graphs(
    context: AssetExecutionContext, samplehub: SampleHubResource
) -> MaterializeResult:
    """Per-chip SLIC graphs with mean U-Net activation maps as node features (paper 2.5)."""
    return run_stage(context, samplehub, build_segment_graphs)


@asset(
    partitions_def=dataset_partitions,
    deps=[segment_graphs],
    group_name="labelling",
    kinds={"pytorch", "mlflow"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(),
)
def gnn_model(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """The GCN/GAT (paper 2.6) on the segment graphs, registered ``labelling-gnn-<ds>``."""
    return run_stage(context, samplehub, train_gnn_model)


@asset(
    partitions_def=dataset_partitions,
    deps=[gnn_model],
    group_name="labelling",
    kinds={"numpy", "umap"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(),
)
def chip_embeddings(
    context: AssetExecutionContext, samplehub: SampleHubResource
) -> MaterializeResult:
    """Node embeddings, Hungarian chip similarity, UMAP and the labelling view (2.7-2.8)."""
    return run_stage(context, samplehub, compute_chip_embeddings)
