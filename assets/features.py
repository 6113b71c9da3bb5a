"""Feature assets and their checks (no NaN features, index recall@k vs exact).

The assets are ``scene_model``, ``image_features[dataset]``, ``ivfpq_index`` and
``label_prototypes``.
"""

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.automation import across_datasets, per_dataset
from assets.ingest import samples
from assets.label_graph import label_graph
from assets.metadata import comparison_metadata, encoding_result, run_metadata
from assets.partitions import HEAVY_POOL, dataset_partitions
from assets.resources import SampleHubResource
from samplehub.feature_store import (
    compute_features,
    count_non_finite,
    train_registered_scene_model,
)
from samplehub.index.lifecycle import index_recall, update_ivfpq_index
from samplehub.models.feature_model import model_version
from samplehub.retrieval.comparison import refresh_index_comparison
from samplehub.retrieval.prototypes import compute_prototypes


@asset(
    deps=[AssetDep(samples, partition_mapping=AllPartitionMapping())],
    group_name="features",
    kinds={"pytorch", "mlflow"},
    pool=HEAVY_POOL,
)
def scene_model(samplehub: SampleHubResource) -> MaterializeResult:
    """The multi-label scene model (BCE + pair term), registered in MLflow under the alias."""
    result = train_registered_scene_model(samplehub.repository())
    last = result.history[-1] if result.history else {}
    return MaterializeResult(
        metadata={
            "model_uri": str(result.model_uri),
            "registered_version": str(result.model_version),
            "run_id": str(result.run_id),
            **{k: MetadataValue.float(round(v, 4)) for k, v in last.items() if k != "epoch"},
        }
    )


@asset(
    partitions_def=dataset_partitions,
    deps=[samples, scene_model],
    group_name="features",
    kinds={"pytorch", "delta"},
    pool=HEAVY_POOL,
    automation_condition=per_dataset(optional=("scene_model",)),
)
def image_features(
    context: AssetExecutionContext, samplehub: SampleHubResource
) -> MaterializeResult:
    """Multi-scale features of one dataset's samples; only samples new to the model version."""
    report = compute_features(samplehub.repository(), context.partition_key, progress=True)
    context.log.info(f"{report.computed} computed, {report.cached} cached ({report.model_version})")
    return encoding_result(
        "model_version", report.model_version, report,
        img_per_s=MetadataValue.float(round(report.img_per_s, 1)),
    )


@asset(
    deps=[AssetDep(image_features, partition_mapping=AllPartitionMapping())],
    group_name="features",
    kinds={"faiss"},
    pool=HEAVY_POOL,
    automation_condition=across_datasets(),
)
def ivfpq_index(samplehub: SampleHubResource) -> MaterializeResult:
    """IVF-PQ index of every feature: built once, grown per dataset, retrained on growth."""
    repo = samplehub.repository()
    update = update_ivfpq_index(repo)
    compared = refresh_index_comparison(repo)  # index=auto decides by the served indexes
    return MaterializeResult(
        metadata=run_metadata(
            "model_version", update.model_version, update.seconds, update.path,
            action=update.action, added=update.added, ntotal=update.ntotal, nlist=update.nlist,
            coarse_quantizer=update.coarse, nbits=update.nbits, **comparison_metadata(compared),
        )
    )


@asset(
    deps=[AssetDep(image_features, partition_mapping=AllPartitionMapping()), label_graph],
    group_name="features",
    kinds={"faiss", "delta"},
    automation_condition=across_datasets(),
)
def label_prototypes(samplehub: SampleHubResource) -> MaterializeResult:
    """K-means prototypes of each original and unified label's features."""
    report = compute_prototypes(samplehub.repository())
    return MaterializeResult(
        metadata=run_metadata(
            "model_version", report.model_version, report.seconds, labels=report.labels,
            prototypes=report.prototypes, labels_without_features=report.skipped,
        )
    )


@asset_check(asset=ivfpq_index, blocking=True)
def recall_at_k_above_bar(samplehub: SampleHubResource) -> AssetCheckResult:
    """recall@k of the index against exact search on held-out probes >= the configured bar."""
    repo = samplehub.repository()
    report = index_recall(repo)
    bar = repo.config.retrieval.recall_bar
    return AssetCheckResult(
        passed=report.recall >= bar,
        metadata={"recall": MetadataValue.float(round(report.recall, 4)), "bar": bar,
                  "k": report.k, "probes": report.nq, "nprobe": report.nprobe,
                  "max_codes": report.max_codes},
    )


@asset_check(asset=image_features, blocking=True)
def features_are_finite(samplehub: SampleHubResource) -> AssetCheckResult:
    """No stored feature of the current model version holds NaN or infinity."""
    repo = samplehub.repository()
    vectors, bad = count_non_finite(repo.catalog, model_version(repo.config))
    return AssetCheckResult(passed=bad == 0, metadata={"vectors": vectors, "non_finite": bad})
