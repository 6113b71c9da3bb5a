"""Label-graph assets: ``label_graph`` (every ``label_tree`` partition merged) and
``label_embeddings``, with their checks (IS_A acyclic, every dataset label maps)."""

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

from assets.resources import SampleHubResource
from samplehub.labels.settings import GraphSettings, graph_settings_from_config
from samplehub.labels.workflow import commit_label_trees, open_store


def _settings(samplehub: SampleHubResource) -> tuple[GraphSettings, str]:
    config = samplehub.repository().config
    return graph_settings_from_config(config), str(config.home_path)


@asset(
    deps=[AssetDep("label_tree", partition_mapping=AllPartitionMapping())],
    group_name="labels",
    kinds={"delta", "networkx"},
)
def label_graph(context: AssetExecutionContext, samplehub: SampleHubResource) -> MaterializeResult:
    """Every dataset's label tree merged by Algorithm 1 into the graph; one new version."""
    settings, home = _settings(samplehub)
    catalog = samplehub.repository().catalog
    trees = {
        d: [(n["name"], n["parent"]) for n in catalog.label_tree_json(d)["nodes"]]
        for d in context.instance.get_dynamic_partitions("dataset")
    }
    unlabelled = sorted(d for d, nodes in trees.items() if not nodes)
    graph, rows = commit_label_trees(
        settings, home, {d: nodes for d, nodes in trees.items() if nodes}
    )
    grown = sum(r.new for rs in rows.values() for r in rs)
    return MaterializeResult(
        metadata={
            "version": graph.version,
            "labels": graph.g.number_of_nodes(),
            "edges": graph.g.number_of_edges(),
            "datasets": MetadataValue.json(sorted(rows)),
            "unlabelled_datasets_skipped": MetadataValue.json(unlabelled),
            "new_unified_labels": grown,
        }
    )


@asset(deps=[label_graph], group_name="labels", kinds={"numpy"})
def label_embeddings(samplehub: SampleHubResource) -> MaterializeResult:
    """Text embeddings of every label (stored on the graph's nodes; reported here)."""
    settings, home = _settings(samplehub)
    graph = open_store(settings, home).load()
    dims = {len(d["embedding"]) for _, d in graph.g.nodes(data=True) if d.get("embedding")}
    return MaterializeResult(
        metadata={
            "version": graph.version,
            "labels": graph.g.number_of_nodes(),
            "dimensions": MetadataValue.json(sorted(dims)),
            "model": settings.embedding_model,
        }
    )


@asset_check(asset=label_graph, blocking=True)
def is_a_acyclic(samplehub: SampleHubResource) -> AssetCheckResult:
    """``IS_A`` edges form no cycle."""
    settings, home = _settings(samplehub)
    cycle = open_store(settings, home).load().is_a_cycle()
    return AssetCheckResult(
        passed=cycle is None, metadata={"cycle": MetadataValue.json(cycle or [])}
    )


@asset_check(asset=label_graph, blocking=True)
def every_dataset_label_maps(samplehub: SampleHubResource) -> AssetCheckResult:
    """Every dataset label has a ``MAPS_TO`` edge to a unified label."""
    settings, home = _settings(samplehub)
    unmapped = open_store(settings, home).load().unmapped_labels()
    return AssetCheckResult(
        passed=not unmapped, metadata={"unmapped": MetadataValue.json(unmapped)}
    )
