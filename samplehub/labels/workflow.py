"""Entry points shared by the CLI, the Dagster assets and the benchmark.

They wire settings to the domain pieces: open the similarity machinery, open the store,
start from the base taxonomy, merge label trees and commit one new version per call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from samplehub.errors import LabelGraphError
from samplehub.labels.cooccurrence import CATALOG_SOURCE, MultiLabelSamples, add_cooccurrence
from samplehub.labels.embeddings import TextEmbedder
from samplehub.labels.graph import LAND_COVER, SCENE, LabelGraph
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

if TYPE_CHECKING:
    from samplehub.repository import ModelCache, Repository


def open_semantics(
    settings: GraphSettings, home: str | Path, models: ModelCache | None = None
) -> LabelSemantics:
    """OSM network + vocabulary + cached embedder (cache under ``<home>/label_graph``).

    ``models`` keeps the text-embedding model loaded (a repository's
    :attr:`~samplehub.repository.Repository.models`); None loads it for this call.
    """
    network = OsmSemanticNetwork.from_rdf(
        settings.osm_network,
        min_in_links=settings.min_in_links,
        narrower_decay=settings.narrower_decay,
    )
    vocabulary = network.vocabulary() | label_vocabulary(load_taxonomy_file(settings.taxonomy))
    embedder = TextEmbedder(
        settings.embedding_model, Path(home) / "label_graph" / "embeddings", models
    )
    return LabelSemantics(network, embedder, vocabulary, settings.merge)


def open_store(settings: GraphSettings, home: str | Path) -> LabelGraphStore:
    """The label-graph store of the configured backend.

    A repository's is :attr:`~samplehub.repository.Repository.labels`.
    """
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
    land_cover: frozenset[str] = frozenset(),
) -> tuple[LabelGraph, dict[str, list[MappingRow]]]:
    """Merge several ``(dataset, nodes, aliases)`` trees; returns the new graph.

    Scene datasets are merged first, in order, then the ``land_cover`` (multi-label)
    datasets, in order, so a land-cover label meets every scene label it may be related
    to or named like.
    """
    overrides = Overrides.from_yaml(settings.overrides) if settings.overrides else Overrides()
    rows: dict[str, list[MappingRow]] = {}
    ordered = sorted(trees, key=lambda tree: tree[0] in land_cover)
    for dataset, nodes, aliases in ordered:
        kind = LAND_COVER if dataset in land_cover else SCENE
        graph, rows[dataset] = merge_label_tree(
            graph, dataset, nodes, semantics, overrides, aliases, kind=kind
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


@dataclass(frozen=True)
class LabelGraphUpdate:
    """What one :func:`commit_label_trees` committed.

    Attributes:
        graph: the new version.
        rows: mapping rows per merged dataset.
        cooccurs: ``CO_OCCURS`` edges derived from the catalog's multi-label samples.
        land_cover: datasets merged as land-cover (multi-label) datasets, sorted.
    """

    graph: LabelGraph
    rows: dict[str, list[MappingRow]]
    cooccurs: int
    land_cover: list[str]


class LabelTrees(Protocol):
    """What :func:`catalog_label_trees` needs of :class:`samplehub.catalog.Catalog`."""

    def datasets(self) -> Any:
        """The registry, a frame with a ``dataset`` column."""

    def label_tree_json(self, dataset: str) -> dict[str, Any]:
        """A dataset's label tree ``{"nodes": [{"name", "parent", ...}, ...]}``."""


@dataclass(frozen=True)
class CatalogTrees:
    """The label trees of some datasets, as the catalog's registry holds them.

    Attributes:
        trees: ``(name, parent)`` nodes by dataset, for datasets with labels.
        unlabelled: datasets whose tree is empty (images without labels), sorted.
        missing: datasets the registry does not hold (not ingested, or failed), sorted.
    """

    trees: dict[str, list[tuple[str, str | None]]]
    unlabelled: list[str]
    missing: list[str]


def catalog_label_trees(catalog: LabelTrees, datasets: Iterable[str]) -> CatalogTrees:
    """Label trees of ``datasets`` from the catalog registry, in the order given."""
    registered = set(catalog.datasets()["dataset"])
    trees: dict[str, list[tuple[str, str | None]]] = {}
    unlabelled: list[str] = []
    missing: list[str] = []
    for dataset in datasets:
        if dataset not in registered:
            missing.append(dataset)
            continue
        nodes = [(n["name"], n["parent"]) for n in catalog.label_tree_json(dataset)["nodes"]]
        if nodes:
            trees[dataset] = nodes
        else:
            unlabelled.append(dataset)
    return CatalogTrees(trees, sorted(unlabelled), sorted(missing))


def commit_label_trees(
    repo: Repository,
    trees: dict[str, list[tuple[str, str | None]]],
    multilabel: MultiLabelSamples | None = None,
) -> LabelGraphUpdate:
    """Merge ``{dataset: nodes}`` label trees and the catalog's co-occurrence; one version.

    Re-merging a dataset replaces its labels (and the edges touching them), so the
    ``label_graph`` asset can re-run over every partition. The multi-label datasets of
    ``multilabel`` are merged as land-cover labels, and their samples' label pairs become
    ``CO_OCCURS {count, weight}`` edges (main paper, section 3.3.2, spatial adjacency;
    :func:`samplehub.labels.cooccurrence.add_cooccurrence`) in the same version, replacing
    the catalog's edges of the previous one.

    Args:
        repo: the repository: its label-graph store and settings
            (``graph.cooccurrence_min_count`` is the edge threshold), its home (embedding
            cache) and its loaded models.
        trees: label trees by dataset.
        multilabel: the catalog's multi-label samples
            (:func:`samplehub.labels.cooccurrence.catalog_multilabel_samples`); ``None``:
            no co-occurrence, every dataset a scene dataset.

    Raises:
        LabelGraphError: no trees, or a sample names a label missing from its tree.
    """
    if not trees:
        raise LabelGraphError("no label trees to merge; materialize label_tree for a dataset first")
    multilabel = multilabel or MultiLabelSamples([], frozenset())
    land_cover = multilabel.land_cover & set(trees)
    settings, store = repo.graph_settings, repo.labels
    semantics = open_semantics(settings, repo.config.home_path, repo.models)
    graph, rows = merge_label_trees(
        current_graph(store, settings, semantics),
        [(dataset, nodes, {}) for dataset, nodes in trees.items()],
        semantics,
        settings,
        frozenset(land_cover),
    )
    graph, added = add_cooccurrence(
        graph, multilabel.samples, CATALOG_SOURCE, settings.cooccurrence_min_count
    )
    store.commit(
        graph, f"merge label trees: {', '.join(trees)}; {added} CO_OCCURS edges from the catalog"
    )
    return LabelGraphUpdate(graph, rows, added, sorted(land_cover))


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
