"""Hierarchical image retrieval assets (DESIGN.md section 5).

``samples -> tkanet_model / esformer_model (MLflow) -> landcover_stats[dataset]``.

Paper: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``. ESFormer is
trained weakly, on image-level labels (``samplehub.models.hir_model``).
"""

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.automation import per_dataset
from assets.ingest import samples
from assets.metadata import encoding_result
from assets.partitions import HEAVY_POOL, dataset_partitions
from assets.resources import SampleHubResource
from samplehub.landcover import compute_landcover_stats
from samplehub.models.hir_model import describe, train_esformer_model, train_tkanet_model

ALL_SAMPLES = AssetDep(samples, partition_mapping=AllPartitionMapping())


@asset(deps=[ALL_SAMPLES], group_name="hir", kinds={"pytorch", "mlflow"}, pool=HEAVY_POOL)
def tkanet_model(samplehub: SampleHubResource) -> MaterializeResult:
    """TKANet (HIR Table I) on ``hir.tkanet_dataset``'s scene labels; champion only if better."""
    return MaterializeResult(metadata=describe(train_tkanet_model(samplehub.repository())))


@asset(deps=[ALL_SAMPLES], group_name="hir", kinds={"pytorch", "mlflow"}, pool=HEAVY_POOL)
def esformer_model(samplehub: SampleHubResource) -> MaterializeResult:
    """ESFormer (HIR II.C), weakly on ``hir.esformer_dataset``'s image labels; champion if won."""
    return MaterializeResult(metadata=describe(train_esformer_model(samplehub.repository())))


@asset(
    partitions_def=dataset_partitions,
    deps=[samples, esformer_model],
    group_name="hir",
    kinds={"pytorch", "delta"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(need_one_of=("esformer_model",)),
)
def landcover_stats(
    context: AssetExecutionContext, samplehub: SampleHubResource
) -> MaterializeResult:
    """Each sample's land-cover class proportions (HIR Eq. 1's X) by the champion ESFormer."""
    report = compute_landcover_stats(samplehub.repository(), context.partition_key, progress=True)
    context.log.info(f"{report.computed} computed, {report.cached} cached ({report.model_version})")
    means = {} if report.mean is None else {
        f"mean_{c}": MetadataValue.float(round(float(v), 4))
        for c, v in zip(report.classes, report.mean, strict=True)}
    return encoding_result("model", report.model_version, report, **means)
