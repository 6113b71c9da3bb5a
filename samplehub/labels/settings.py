"""Label-graph settings: the validated ``graph`` section of the configuration, for the domain.

:class:`samplehub.config.GraphConfig` is the schema of ``conf/graph/*.yaml`` (the backend
choice, the input files, Algorithm 1's parameters ``merge``, Eq. 1's ``association`` and
the co-occurrence threshold); Hydra composes it and OmegaConf validates it in
:func:`samplehub.config.load_config`. Its parameter groups are the domain types themselves
(:class:`~samplehub.labels.merge.MergeSettings`,
:class:`~samplehub.labels.association.AssociationWeights`), which check their ranges when
the configuration loads. :class:`GraphSettings` is the same section with its paths
resolved. It has no defaults of its own: ``conf/`` is the one source of every value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from samplehub.labels.association import AssociationWeights
from samplehub.labels.merge import MergeSettings

if TYPE_CHECKING:
    from samplehub.config import GraphConfig, Neo4jConfig, SampleHubConfig


@dataclass(frozen=True)
class GraphSettings:
    """Everything the label graph needs (:class:`samplehub.config.GraphConfig`, resolved).

    Attributes:
        backend: ``embedded`` or ``neo4j``.
        taxonomy: ``dataset_labels.json``.
        osm_network: ``osm_semantic_network.skos.rdf.gz``.
        overrides: the human override file (pin/forbid); ``None`` for none.
        embedding_model: ``bundled:all-MiniLM-L6-v2`` or a local model path.
        min_in_links: OSM tags with fewer incoming links get the smoothed citation set.
        narrower_decay: structural-similarity factor per narrower (qualified-label) hop.
        cooccurrence_min_count: minimum joint count for a ``CO_OCCURS`` edge.
        merge: Algorithm 1 parameters.
        association: Eq. 1 parameters.
        neo4j: Bolt connection.
    """

    backend: str
    taxonomy: Path
    osm_network: Path
    overrides: Path | None
    embedding_model: str
    min_in_links: int
    narrower_decay: float
    cooccurrence_min_count: int
    merge: MergeSettings
    association: AssociationWeights
    neo4j: Neo4jConfig

    @classmethod
    def from_config(cls, graph: GraphConfig, root: Path) -> GraphSettings:
        """The settings of a validated ``graph`` section; relative paths resolve from ``root``."""
        values = {f.name: getattr(graph, f.name) for f in fields(graph)}
        values.update(
            taxonomy=_resolve(graph.taxonomy, root),
            osm_network=_resolve(graph.osm_network, root),
            overrides=None if graph.overrides is None else _resolve(graph.overrides, root),
        )
        return cls(**values)


def graph_settings_from_config(config: SampleHubConfig) -> GraphSettings:
    """The label-graph settings of a loaded configuration (``config.graph``).

    Relative paths resolve from the repository root, the parent of the packaged ``conf/``.
    :attr:`samplehub.repository.Repository.graph_settings` holds them for a repository.
    """
    from samplehub.config import REPO_CONF_DIR

    return GraphSettings.from_config(config.graph, REPO_CONF_DIR.parent)


def _resolve(path: str, root: Path) -> Path:
    """``path`` with ``~`` expanded, taken from ``root`` unless absolute."""
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else root / expanded
