"""Neo4j backend of the label graph.

Main paper, section 3.3.2: the label graph is "stored and managed using the Neo4j graph
database".

Each version is a set of ``(:Label {graph_version, id, ...})`` nodes with typed
relationships (``IS_A``, ``SIMILAR``, ``CO_OCCURS``, ``MAPS_TO``) plus one
``(:GraphVersion {number, message, created_at, labels, edges})`` node. A commit runs in a
single write transaction, so a failure (or a server that goes away) leaves no partial
version. Constraints: ``(Label.graph_version, Label.id)`` and ``GraphVersion.number`` are
unique; ``Label.name`` is indexed. Properties Neo4j cannot hold (``None``) are dropped;
nested values are stored as JSON strings with a ``json:`` prefix.

Start a server for the contract tests with ``infra/neo4j/start.sh``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from samplehub.errors import LabelGraphError, OptionalDependencyError
from samplehub.labels.graph import EDGE_TYPES, LabelGraph
from samplehub.labels.store import GraphVersion, check_graph

_SCHEMA = (
    "CREATE CONSTRAINT label_version_id IF NOT EXISTS "
    "FOR (l:Label) REQUIRE (l.graph_version, l.id) IS UNIQUE",
    "CREATE CONSTRAINT graph_version_number IF NOT EXISTS "
    "FOR (v:GraphVersion) REQUIRE v.number IS UNIQUE",
    "CREATE INDEX label_name IF NOT EXISTS FOR (l:Label) ON (l.name)",
)
_BATCH = 500


class Neo4jLabelGraphStore:
    """Label graph versions in Neo4j over Bolt.

    Args:
        uri: Bolt URI, e.g. ``bolt://localhost:7687``.
        user: user name.
        password: password.
        database: database name (``neo4j`` on Community Edition).
    """

    def __init__(self, uri: str, user: str, password: str, database: str = "neo4j") -> None:
        try:
            import neo4j
        except ImportError as exc:
            raise OptionalDependencyError("neo4j", "neo4j") from exc
        self._neo4j = neo4j
        self.uri = uri
        self.database = database
        self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password))
        self._run_schema()

    def close(self) -> None:
        """Close the driver."""
        self._driver.close()

    def _session(self) -> Any:
        return self._driver.session(database=self.database)

    def _call(self, work: Any, write: bool) -> Any:
        errors = (
            self._neo4j.exceptions.ServiceUnavailable,
            self._neo4j.exceptions.AuthError,
            self._neo4j.exceptions.SessionExpired,
        )
        try:
            with self._session() as session:
                run = session.execute_write if write else session.execute_read
                return run(work)
        except errors as exc:
            raise LabelGraphError(
                f"Neo4j at {self.uri} is not reachable ({exc.__class__.__name__}: {exc}); start it "
                "with infra/neo4j/start.sh or set graph=embedded"
            ) from exc

    def _run_schema(self) -> None:
        errors = (self._neo4j.exceptions.ServiceUnavailable, self._neo4j.exceptions.AuthError)
        try:
            with self._session() as session:
                for statement in _SCHEMA:
                    session.run(statement).consume()
        except errors as exc:
            raise LabelGraphError(
                f"Neo4j at {self.uri} is not reachable ({exc.__class__.__name__}: {exc}); start it "
                "with infra/neo4j/start.sh or set graph=embedded"
            ) from exc

    def commit(self, graph: LabelGraph, message: str) -> int:
        """Write all labels and edges of ``graph`` as the next version, in one transaction."""
        check_graph(graph)
        nodes, edges = graph.to_records()
        node_rows = [
            {
                "id": n["id"],
                "props": {**_to_neo4j({k: v for k, v in n.items() if k != "id"}), "_order": i},
            }
            for i, n in enumerate(nodes)
        ]
        by_type: dict[str, list[dict[str, Any]]] = {t: [] for t in EDGE_TYPES}
        for e in edges:
            props = {k: v for k, v in e.items() if k not in ("source", "target", "type")}
            by_type[e["type"]].append(
                {"s": e["source"], "t": e["target"], "props": _to_neo4j(props)}
            )

        def work(tx: Any) -> int:
            record = tx.run(
                "MATCH (v:GraphVersion) RETURN coalesce(max(v.number), 0) AS n"
            ).single()
            number = int(record["n"]) + 1
            for start in range(0, len(node_rows), _BATCH):
                tx.run(
                    "UNWIND $rows AS row CREATE (l:Label) SET l = row.props, l.id = row.id, "
                    "l.graph_version = $v",
                    rows=node_rows[start : start + _BATCH],
                    v=number,
                )
            for type_, rows in by_type.items():
                for start in range(0, len(rows), _BATCH):
                    tx.run(
                        "UNWIND $rows AS row "
                        "MATCH (a:Label {graph_version: $v, id: row.s}), "
                        "(b:Label {graph_version: $v, id: row.t}) "
                        f"CREATE (a)-[r:{type_}]->(b) SET r = row.props",
                        rows=rows[start : start + _BATCH],
                        v=number,
                    )
            tx.run(
                "CREATE (:GraphVersion {number: $v, message: $m, created_at: $c, "
                "labels: $nl, edges: $ne})",
                v=number,
                m=message,
                c=datetime.now(UTC).isoformat(timespec="seconds"),
                nl=len(nodes),
                ne=len(edges),
            )
            return number

        graph.version = int(self._call(work, write=True))
        return graph.version

    def load(self, version: int | None = None) -> LabelGraph:
        """Read one version back into a :class:`LabelGraph`."""

        def work(tx: Any) -> LabelGraph:
            latest = tx.run("MATCH (v:GraphVersion) RETURN max(v.number) AS n").single()["n"]
            if latest is None:
                raise LabelGraphError(
                    f"no label graph in Neo4j at {self.uri}; merge a dataset first"
                )
            wanted = int(latest) if version is None else version
            if not 1 <= wanted <= int(latest):
                raise LabelGraphError(
                    f"label graph version {wanted} does not exist (latest is {latest})"
                )
            nodes = [
                {"id": r["id"], **_from_neo4j(r["props"])}
                for r in tx.run(
                    "MATCH (l:Label {graph_version: $v}) RETURN l.id AS id, properties(l) AS props "
                    "ORDER BY l._order",
                    v=wanted,
                )
            ]
            edges = [
                {"source": r["s"], "target": r["t"], "type": r["type"], **_from_neo4j(r["props"])}
                for r in tx.run(
                    "MATCH (a:Label {graph_version: $v})-[r]->(b:Label {graph_version: $v}) "
                    "RETURN a.id AS s, b.id AS t, type(r) AS type, properties(r) AS props",
                    v=wanted,
                )
            ]
            return LabelGraph.from_records(nodes, edges, version=wanted)

        return self._call(work, write=False)

    def versions(self) -> list[GraphVersion]:
        """All versions, oldest first."""

        def work(tx: Any) -> list[GraphVersion]:
            return [
                GraphVersion(int(r["n"]), r["m"], r["c"], int(r["nl"]), int(r["ne"]))
                for r in tx.run(
                    "MATCH (v:GraphVersion) RETURN v.number AS n, v.message AS m, "
                    "v.created_at AS c, v.labels AS nl, v.edges AS ne ORDER BY n"
                )
            ]

        return self._call(work, write=False)


def _to_neo4j(props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in props.items():
        if value is None:
            continue
        nested = isinstance(value, list) and (
            not value or not isinstance(value[0], int | float | str)
        )
        if isinstance(value, dict) or nested:
            out[key] = "json:" + json.dumps(value)
        else:
            out[key] = value
    return out


def _from_neo4j(props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key in ("id", "graph_version", "_order"):
            continue
        out[key] = (
            json.loads(value[5:]) if isinstance(value, str) and value.startswith("json:") else value
        )
    return out
