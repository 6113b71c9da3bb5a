"""Label-graph configuration: the ``graph`` Hydra group (``conf/graph/*.yaml``).

``embedded.yaml`` (default) and ``neo4j.yaml`` hold the backend choice, the input files,
Algorithm 1's parameters (``merge``), Eq. 1's tuning parameters (``association``) and the
co-occurrence threshold. Environment variables enter only through OmegaConf
interpolations in those files (``${oc.env:NEO4J_URI,...}``), resolved here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from samplehub.errors import ConfigError
from samplehub.labels.association import AssociationWeights
from samplehub.labels.embeddings import BUNDLED_MODEL
from samplehub.labels.merge import MergeSettings


@dataclass(frozen=True)
class Neo4jSettings:
    """Bolt connection of the Neo4j backend."""

    uri: str = "bolt://localhost:7687"
    user: str = "neo4j"
    password: str = "samplehub"
    database: str = "neo4j"


@dataclass(frozen=True)
class GraphSettings:
    """Everything the label graph needs.

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

    backend: str = "embedded"
    taxonomy: Path = Path("../shared/taxonomy/dataset_labels.json")
    osm_network: Path = Path("../shared/data/osm_semantic_network/osm_semantic_network.skos.rdf.gz")
    overrides: Path | None = Path("conf/label_overrides.yaml")
    embedding_model: str = BUNDLED_MODEL
    min_in_links: int = 3
    narrower_decay: float = 0.5
    cooccurrence_min_count: int = 5
    merge: MergeSettings = field(default_factory=MergeSettings)
    association: AssociationWeights = field(default_factory=AssociationWeights)
    neo4j: Neo4jSettings = field(default_factory=Neo4jSettings)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], base_dir: Path | None = None) -> GraphSettings:
        """Build from a plain mapping; relative paths are taken from ``base_dir``.

        Raises:
            ConfigError: an unknown key, naming it.
        """
        raw = dict(raw)
        nested = {"merge": MergeSettings, "association": AssociationWeights, "neo4j": Neo4jSettings}
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(
                f"graph config: unknown key(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in nested:
                allowed = {f.name for f in fields(nested[key])}
                bad = set(value or {}) - allowed
                if bad:
                    raise ConfigError(f"graph config: unknown key(s) graph.{key}.{sorted(bad)}")
                kwargs[key] = nested[key](**(value or {}))
            elif key in ("taxonomy", "osm_network", "overrides") and value is not None:
                path = Path(str(value)).expanduser()
                kwargs[key] = path if path.is_absolute() or base_dir is None else base_dir / path
            else:
                kwargs[key] = value
        settings = cls(**kwargs)
        if settings.backend not in ("embedded", "neo4j"):
            raise ConfigError(
                f"graph.backend must be 'embedded' or 'neo4j', got {settings.backend!r}"
            )
        return settings


def graph_settings_from_config(config: Any) -> GraphSettings:
    """Settings from the composed SampleHub config (``samplehub.config.load_config()``),
    whose ``graph`` entry is the chosen ``conf/graph/*.yaml``; paths resolve from the
    repository root."""
    from samplehub.config import REPO_CONF_DIR

    return GraphSettings.from_mapping(dict(config.graph), base_dir=Path(REPO_CONF_DIR).parent)


def load_graph_settings(conf_dir: str | Path = "conf", name: str = "embedded") -> GraphSettings:
    """Read ``<conf_dir>/graph/<name>.yaml``; relative paths resolve from the repo root
    (the parent of ``conf_dir``).

    Raises:
        ConfigError: missing file or bad key.
    """
    from omegaconf import OmegaConf

    conf_dir = Path(conf_dir).resolve()
    path = conf_dir / "graph" / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in (conf_dir / "graph").glob("*.yaml"))
        raise ConfigError(f"graph config {path} not found; choose one of {choices}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict):
        raise ConfigError(f"graph config {path} must be a mapping")
    return GraphSettings.from_mapping({str(k): v for k, v in raw.items()}, base_dir=conf_dir.parent)
