"""Label-graph assets ``label_graph`` and ``label_embeddings``, with their checks.

``label_graph`` merges every ``label_tree`` partition; its checks assert that IS_A is
acyclic and that every dataset label maps.
"""

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.automation import across_datasets
from assets.resources import SampleHubResource
from samplehub.labels.cooccurrence import catalog_multilabel_samples
from samplehub.labels.workflow import catalog_label_trees, commit_label_trees


@asset(
    deps=[AssetDep("label_tree", partition_mapping=AllPartitionMapping())],
    group_name="labels",
    kinds={"delta", "networkx"},
    automation_condition=across_datasets(),
)
def label_graph(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """Every dataset's label tree merged by Algorithm 1, as one new graph version.

    ``CO_OCCURS`` counts come from the multi-label samples in the catalog.
    """
    repo = samplehub.repository()
    found = catalog_label_trees(repo.catalog, context.instance.get_dynamic_partitions("dataset"))
    multilabel = catalog_multilabel_samples(repo.catalog, found.trees)
    update = commit_label_trees(repo, found.trees, multilabel)
    return MaterializeResult(
        metadata={
            "version": update.graph.version,
            "labels": update.graph.g.number_of_nodes(),
            "edges": update.graph.g.number_of_edges(),
            "datasets": MetadataValue.json(sorted(update.rows)),
            "land_cover_datasets": MetadataValue.json(update.land_cover),
            "unlabelled_datasets_skipped": MetadataValue.json(found.unlabelled),
            "datasets_not_in_catalog": MetadataValue.json(found.missing),
            "new_unified_labels": sum(r.new for rs in update.rows.values() for r in rs),
            "co_occurs_edges": update.cooccurs,
            "multi_label_images": multilabel.multi_label_images,
        }
    )


@asset(
    deps=[label_graph],
    group_name="labels",
    kinds={"numpy"},
    automation_condition=AutomationCondition.eager(),
)
def label_embeddings(samplehub: SampleHubResource) -> MaterializeResult:
    """Text embeddings of every label (stored on the graph's nodes; reported here)."""
    repo = samplehub.repository()
    graph = repo.labels.load()
    dims = {len(d["embedding"]) for _, d in graph.g.nodes(data=True) if d.get("embedding")}
    return MaterializeResult(
        metadata={
            "version": graph.version,
            "labels": graph.g.number_of_nodes(),
            "dimensions": MetadataValue.json(sorted(dims)),
            "model": repo.graph_settings.embedding_model,
        }
    )


@asset_check(asset=label_graph, blocking=True)
def is_a_acyclic(samplehub: SampleHubResource) -> AssetCheckResult:
    """``IS_A`` edges form no cycle."""
    cycle = samplehub.repository().labels.load().is_a_cycle()
    return AssetCheckResult(
        passed=cycle is None, metadata={"cycle": MetadataValue.json(cycle or [])}
    )


@asset_check(asset=label_graph, blocking=True)
def every_dataset_label_maps(samplehub: SampleHubResource) -> AssetCheckResult:
    """Every dataset label has a ``MAPS_TO`` edge to a unified label."""
    unmapped = samplehub.repository().labels.load().unmapped_labels()
    return AssetCheckResult(
        passed=not unmapped, metadata={"unmapped": MetadataValue.json(unmapped)}
    )
