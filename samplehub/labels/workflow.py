"""Entry points shared by the CLI, the Dagster assets and the benchmark.

They wire settings to the domain pieces: open the similarity machinery, open the store,
start from the base taxonomy, merge label trees and commit one new version per call.
"""

from __future__ import annotations

from pathlib import Path

from samplehub.errors import LabelGraphError
from samplehub.labels.cooccurrence import add_cooccurrence
from samplehub.labels.embeddings import TextEmbedder
from samplehub.labels.graph import LabelGraph
from samplehub.labels.merge import (
    LabelSemantics,
    MappingRow,
    Overrides,
    build_base_graph,
    merge_label_tree,
)
from samplehub.labels.osm import OsmSemanticNetwork
from samplehub.labels.settings import GraphSettings
from samplehub.labels.store import EmbeddedLabelGraphStore, LabelGraphStore
from samplehub.labels.taxonomy import (
    base_taxonomy,
    dataset_labels,
    label_vocabulary,
    load_taxonomy_file,
)


def open_semantics(settings: GraphSettings, home: str | Path) -> LabelSemantics:
    """OSM network + vocabulary + cached embedder (cache under ``<home>/label_graph``)."""
    network = OsmSemanticNetwork.from_rdf(
        settings.osm_network,
        min_in_links=settings.min_in_links,
        narrower_decay=settings.narrower_decay,
    )
    vocabulary = network.vocabulary() | label_vocabulary(load_taxonomy_file(settings.taxonomy))
    embedder = TextEmbedder(settings.embedding_model, Path(home) / "label_graph" / "embeddings")
    return LabelSemantics(network, embedder, vocabulary, settings.merge)


def open_store(settings: GraphSettings, home: str | Path) -> LabelGraphStore:
    """The configured backend."""
    if settings.backend == "neo4j":
        from samplehub.labels.neo4j_store import Neo4jLabelGraphStore

        n = settings.neo4j
        return Neo4jLabelGraphStore(n.uri, n.user, n.password, n.database)
    return EmbeddedLabelGraphStore(home)


def current_graph(
    store: LabelGraphStore, settings: GraphSettings, semantics: LabelSemantics
) -> LabelGraph:
    """The latest stored version, or the base taxonomy graph when nothing is stored yet."""
    if store.versions():
        return store.load()
    return build_base_graph(base_taxonomy(load_taxonomy_file(settings.taxonomy)), semantics)


def merge_label_trees(
    graph: LabelGraph,
    trees: list[tuple[str, list[tuple[str, str | None]], dict[str, str]]],
    semantics: LabelSemantics,
    settings: GraphSettings,
) -> tuple[LabelGraph, dict[str, list[MappingRow]]]:
    """Merge several ``(dataset, nodes, aliases)`` trees in order; returns the new graph."""
    overrides = Overrides.from_yaml(settings.overrides) if settings.overrides else Overrides()
    rows: dict[str, list[MappingRow]] = {}
    for dataset, nodes, aliases in trees:
        graph, rows[dataset] = merge_label_tree(
            graph, dataset, nodes, semantics, overrides, aliases
        )
    return graph, rows


def merge_taxonomy_datasets(
    store: LabelGraphStore, settings: GraphSettings, semantics: LabelSemantics, datasets: list[str]
) -> tuple[LabelGraph, dict[str, list[MappingRow]]]:
    """Merge class lists from the taxonomy file by dataset key and commit one version."""
    if not datasets:
        raise LabelGraphError("name at least one dataset key of the taxonomy file")
    data = load_taxonomy_file(settings.taxonomy)
    trees = []
    for key in datasets:
        entry = dataset_labels(data, key)
        trees.append((key, entry.nodes, entry.aliases))
    graph, rows = merge_label_trees(
        current_graph(store, settings, semantics), trees, semantics, settings
    )
    store.commit(graph, f"merge taxonomy lists: {', '.join(datasets)}")
    return graph, rows


def commit_label_trees(
    settings: GraphSettings, home: str | Path, trees: dict[str, list[tuple[str, str | None]]]
) -> tuple[LabelGraph, dict[str, list[MappingRow]]]:
    """Merge ``{dataset: nodes}`` label trees into the latest graph and commit a version.

    Re-merging a dataset replaces its labels (and the edges touching them), so the
    ``label_graph`` asset can re-run over every partition.
    """
    if not trees:
        raise LabelGraphError("no label trees to merge; materialize label_tree for a dataset first")
    semantics = open_semantics(settings, home)
    store = open_store(settings, home)
    graph, rows = merge_label_trees(
        current_graph(store, settings, semantics),
        [(dataset, nodes, {}) for dataset, nodes in trees.items()],
        semantics,
        settings,
    )
    store.commit(graph, f"merge label trees: {', '.join(trees)}")
    return graph, rows


def add_cooccurrence_source(
    store: LabelGraphStore,
    settings: GraphSettings,
    samples: list[list[str]],
    source: str,
) -> tuple[LabelGraph, int]:
    """Add ``CO_OCCURS`` edges from multi-label samples (label ids) and commit a version."""
    graph = store.load()
    graph, added = add_cooccurrence(graph, samples, source, settings.cooccurrence_min_count)
    store.commit(graph, f"co-occurrence from {source}: {added} edges")
    return graph, added
