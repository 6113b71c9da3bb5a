"""Ingest assets: ``samples[dataset]`` and ``label_tree[dataset]`` with their checks."""

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.automation import json_digest, per_dataset
from assets.partitions import HEAVY_POOL, dataset_partitions
from assets.resources import SampleHubResource
from samplehub.catalog import Catalog
from samplehub.checks import CheckOutcome, row_count_matches_source, sample_ids_unique


@asset(
    partitions_def=dataset_partitions,
    group_name="ingest",
    kinds={"delta", "zarr"},
    pool=HEAVY_POOL,
)
def samples(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """Catalog rows (Delta) and images (Zarr) of one dataset; re-runs add only new files."""
    repo = samplehub.repository()
    report = repo.ingest(repo.source_spec(context.partition_key))
    for item in report.quarantined:
        context.log.warning(f"quarantined {item.entry.relpath}: {item.reason}")
    return MaterializeResult(
        # Ingest only appends (ids are stable), so the row count versions the data: a
        # rescan that adds nothing leaves the version, and everything downstream, alone.
        data_version=DataVersion(str(report.total)),
        metadata={
            "found": report.found,
            "added": report.added,
            "already_catalogued": report.skipped,
            "quarantined": len(report.quarantined),
            "content_hashes_filled": report.hashed,
            "total_samples": report.total,
            "labels": report.labels,
            "bytes_written": MetadataValue.int(report.bytes_written),
            "seconds": MetadataValue.float(round(report.seconds, 2)),
            "samples_per_s": MetadataValue.float(round(report.samples_per_s, 1)),
        }
    )


@asset(
    partitions_def=dataset_partitions,
    deps=[samples],
    group_name="ingest",
    kinds={"json"},
    automation_condition=per_dataset(),
)
def label_tree(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """The dataset's own labels with sample counts (breadth-first over its layout)."""
    nodes = samplehub.repository().catalog.label_tree_json(context.partition_key)["nodes"]
    table = "\n".join(
        ["| label | parent | samples |", "|---|---|---|"]
        + [f"| {n['name']} | {n['parent'] or ''} | {n['count']} |" for n in nodes]
    )
    return MaterializeResult(
        # Counts change with every new file; the graph reads only the names and parents.
        data_version=DataVersion(json_digest([(n["name"], n["parent"]) for n in nodes])),
        metadata={"labels": len(nodes), "tree": MetadataValue.md(table)},
    )


# What the new-dataset sensor and the rescan schedule request: ``samples`` alone, its
# checks with it; the automation conditions carry ``label_tree`` and the rest.
INGEST_SELECTION = [AssetKey("samples")]


@asset_check(asset=samples, blocking=True)
def sample_ids_are_unique(samplehub: SampleHubResource) -> AssetCheckResult:
    """No dataset holds the same sample id twice."""
    return combine([sample_ids_unique(*args) for args in each_dataset(samplehub)])


@asset_check(asset=samples)
def row_count_equals_files_minus_quarantined(samplehub: SampleHubResource) -> AssetCheckResult:
    """Every dataset has exactly (files found - quarantined) catalog rows."""
    return combine([row_count_matches_source(*args) for args in each_dataset(samplehub)])


def each_dataset(samplehub: SampleHubResource) -> list[tuple[Catalog, str]]:
    """(catalog, dataset) for every registered dataset."""
    catalog = samplehub.repository().catalog
    return [(catalog, name) for name in catalog.datasets()["dataset"]]


def combine(outcomes: list[CheckOutcome]) -> AssetCheckResult:
    """One check result from per-dataset outcomes."""
    return AssetCheckResult(
        passed=all(o.passed for o in outcomes),
        metadata={"datasets": len(outcomes), "details": "\n".join(o.description for o in outcomes)},
    )
