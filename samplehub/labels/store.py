"""Versioned label-graph stores: one interface, an embedded and a Neo4j implementation.

DESIGN.md section 3: the label graph has an embedded default (networkx in memory,
persisted as a Delta table under the SampleHub home) and Neo4j over Bolt at scale, chosen
by ``graph.backend`` in ``conf/graph/``. Graphs are small (hundreds of labels), so the
algorithms (Algorithm 1, Eq. 1) run client-side on a :class:`LabelGraph` and a store only
loads and commits whole versions.

Every commit is a new version (1, 2, ...) and is atomic: the embedded store writes one
Delta commit per version (``<home>/label_graph/graph``, one row per node or edge,
properties as JSON), so a failed write leaves the previous version intact; time travel
loads any older version. The Neo4j store is in :mod:`samplehub.labels.neo4j_store`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from samplehub.errors import LabelGraphError
from samplehub.labels.graph import LabelGraph

_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # "node" or "edge"
        ("id", pa.string()),  # node id, or edge source
        ("target", pa.string()),  # edge target (null for nodes)
        ("key", pa.string()),  # edge key (null for nodes)
        ("props", pa.string()),  # JSON properties
    ]
)


@dataclass(frozen=True)
class GraphVersion:
    """One committed version of the label graph."""

    version: int
    message: str
    created_at: str
    labels: int
    edges: int


class LabelGraphStore(Protocol):
    """What every label-graph backend offers."""

    def commit(self, graph: LabelGraph, message: str) -> int:
        """Store ``graph`` as a new version; returns its number and sets ``graph.version``."""
        ...

    def load(self, version: int | None = None) -> LabelGraph:
        """The latest (or the given) version.

        Raises:
            LabelGraphError: nothing committed yet, or no such version.
        """
        ...

    def versions(self) -> list[GraphVersion]:
        """All versions, oldest first."""
        ...


def check_graph(graph: LabelGraph) -> None:
    """Refuse to commit a graph whose ``IS_A`` edges form a cycle.

    Raises:
        LabelGraphError: naming the labels on the cycle.
    """
    cycle = graph.is_a_cycle()
    if cycle is not None:
        raise LabelGraphError(f"IS_A edges form a cycle: {' -> '.join(cycle)}; not committed")


class EmbeddedLabelGraphStore:
    """Label graph versions as a Delta table under ``<home>/label_graph/graph``.

    Args:
        home: the SampleHub home directory.
    """

    def __init__(self, home: str | Path) -> None:
        self.path = Path(home) / "label_graph" / "graph"

    def _exists(self) -> bool:
        return (self.path / "_delta_log").is_dir()

    def commit(self, graph: LabelGraph, message: str) -> int:
        """Overwrite the table in one Delta commit; the Delta version + 1 is the graph version."""
        from deltalake import CommitProperties, write_deltalake

        check_graph(graph)
        nodes, edges = graph.to_records()
        rows: dict[str, list[Any]] = {name: [] for name in _SCHEMA.names}
        for node in nodes:
            props = {k: v for k, v in node.items() if k != "id"}
            _append(rows, "node", node["id"], None, None, props)
        for edge in edges:
            props = {k: v for k, v in edge.items() if k not in ("source", "target", "key")}
            _append(rows, "edge", edge["source"], edge["target"], edge["key"], props)
        table = pa.Table.from_pydict(rows, schema=_SCHEMA)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        meta = {
            "samplehub.message": message,
            "samplehub.created_at": created,
            "samplehub.labels": str(len(nodes)),
            "samplehub.edges": str(len(edges)),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(self.path),
            table,
            mode="overwrite",
            commit_properties=CommitProperties(custom_metadata=meta),
        )
        graph.version = self._latest() + 1
        return graph.version

    def _latest(self) -> int:
        from deltalake import DeltaTable

        return int(DeltaTable(str(self.path)).version())

    def load(self, version: int | None = None) -> LabelGraph:
        """Read a version back via Delta time travel."""
        from deltalake import DeltaTable

        if not self._exists():
            raise LabelGraphError(
                f"no label graph at {self.path}; build one with 'samplehub labels merge-taxonomy'"
            )
        latest = self._latest() + 1
        wanted = latest if version is None else version
        if not 1 <= wanted <= latest:
            raise LabelGraphError(
                f"label graph version {wanted} does not exist (latest is {latest})"
            )
        table = DeltaTable(str(self.path), version=wanted - 1).to_pyarrow_table().to_pylist()
        nodes = [{"id": r["id"], **json.loads(r["props"])} for r in table if r["kind"] == "node"]
        edges = [
            {"source": r["id"], "target": r["target"], "key": r["key"], **json.loads(r["props"])}
            for r in table
            if r["kind"] == "edge"
        ]
        return LabelGraph.from_records(nodes, edges, version=wanted)

    def versions(self) -> list[GraphVersion]:
        """Versions from the Delta history."""
        from deltalake import DeltaTable

        if not self._exists():
            return []
        found = []
        for entry in DeltaTable(str(self.path)).history():
            found.append(
                GraphVersion(
                    version=int(entry["version"]) + 1,
                    message=str(entry.get("samplehub.message", "")),
                    created_at=str(entry.get("samplehub.created_at", "")),
                    labels=int(entry.get("samplehub.labels", 0)),
                    edges=int(entry.get("samplehub.edges", 0)),
                )
            )
        return sorted(found, key=lambda v: v.version)


def _append(
    rows: dict[str, list[Any]],
    kind: str,
    id_: str,
    target: str | None,
    key: str | None,
    props: dict[str, Any],
) -> None:
    rows["kind"].append(kind)
    rows["id"].append(id_)
    rows["target"].append(target)
    rows["key"].append(key)
    try:
        rows["props"].append(json.dumps(props, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise LabelGraphError(
            f"{kind} {id_!r}: properties are not JSON-serialisable: {exc}"
        ) from exc
