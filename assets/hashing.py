"""Deep-hashing assets (DESIGN.md, section 5) and a check that the index holds every code.

The assets are ``dmch_model``, ``duwh_model``, ``hash_codes[dataset]`` and ``hash_index``;
``hash_index`` also measures the Hamming index against IVF-PQ on the catalog's labelled
samples, the measurement ``index="auto"`` decides by (``samplehub.retrieval.comparison``).
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
from assets.features import image_features
from assets.metadata import comparison_metadata, encoding_result, run_metadata
from assets.partitions import HEAVY_POOL, dataset_partitions
from assets.resources import SampleHubResource
from samplehub.index.hamming import (
    compute_hash_codes,
    load_hash_codes,
    load_hash_index,
    update_hash_index,
)
from samplehub.models.hash_model import HashTraining, load_hash_model, train_hash_model
from samplehub.retrieval.comparison import update_index_comparison

ALL_FEATURES = AssetDep(image_features, partition_mapping=AllPartitionMapping())


def training_metadata(run: HashTraining) -> MaterializeResult:
    """Materialization of a training run: MLflow run, mAP and the promotion decision."""
    champion = run.champion_map
    previous = MetadataValue.float(round(champion, 4)) if champion is not None else "none"
    return MaterializeResult(
        metadata={
            "run_id": run.run_id,
            "registered_model": run.model_name,
            "version": run.version,
            "map": MetadataValue.float(round(run.val_map, 4)),
            "champion_map": previous,
            "promoted": "yes" if run.promoted else "no",
            "alias": run.alias,
            "dataset": run.dataset,
            "samples": run.samples,
        }
    )


@asset(deps=[ALL_FEATURES], group_name="hashing", kinds={"pytorch", "mlflow"}, pool=HEAVY_POOL)
def dmch_model(samplehub: SampleHubResource) -> MaterializeResult:
    """DMCH (supervised, DMCH Eq. 1-7) on ``hashing.dmch_dataset``; champion only if better."""
    return training_metadata(train_hash_model(samplehub.repository(), "dmch"))


@asset(deps=[ALL_FEATURES], group_name="hashing", kinds={"pytorch", "mlflow"}, pool=HEAVY_POOL)
def duwh_model(samplehub: SampleHubResource) -> MaterializeResult:
    """DUWH (unsupervised, DUWH Eq. 1-18) on ``hashing.duwh_dataset``; champion only if better."""
    return training_metadata(train_hash_model(samplehub.repository(), "duwh"))


@asset(
    partitions_def=dataset_partitions,
    deps=[image_features, dmch_model, duwh_model],
    group_name="hashing",
    kinds={"delta"},
    automation_condition=per_dataset(need_one_of=("dmch_model", "duwh_model")),
)
def hash_codes(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """Champion codes of one dataset's features (packed bits + pre-quantization values)."""
    report = compute_hash_codes(samplehub.repository(), context.partition_key)
    context.log.info(f"{report.computed} computed, {report.cached} cached ({report.model})")
    return encoding_result("model", report.model, report)


@asset(
    deps=[AssetDep(hash_codes, partition_mapping=AllPartitionMapping())],
    group_name="hashing",
    kinds={"faiss"},
    automation_condition=across_datasets(),
)
def hash_index(samplehub: SampleHubResource) -> MaterializeResult:
    """Hamming index over every dataset's codes, measured against IVF-PQ for ``index=auto``."""
    repo = samplehub.repository()
    update = update_hash_index(repo)
    compared = update_index_comparison(repo)
    return MaterializeResult(
        metadata=run_metadata(
            "model", update.model, update.seconds, update.path, action=update.action,
            ntotal=update.ntotal, kind=update.kind, bytes_per_sample=update.bytes_per_sample,
            memory_mb=MetadataValue.float(round(update.memory_bytes / 2**20, 3)),
            **comparison_metadata(compared),
        )
    )


@asset_check(asset=hash_index, blocking=True)
def hash_index_holds_every_code(samplehub: SampleHubResource) -> AssetCheckResult:
    """The saved index holds exactly the champion's stored codes."""
    repo = samplehub.repository()
    model = load_hash_model(repo.config)
    ids, _, _ = load_hash_codes(repo.catalog, model.model_version)
    indexed = load_hash_index(repo.config, model.model_version)
    return AssetCheckResult(
        passed=len(indexed) == len(ids) and bool((indexed.ids == ids).all()),
        metadata={"codes": len(ids), "indexed": len(indexed)},
    )
