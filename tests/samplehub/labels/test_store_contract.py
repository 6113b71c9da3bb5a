"""One contract suite for every label-graph backend: embedded (always) and Neo4j
(whenever NEO4J_URI is set; start one with infra/neo4j/start.sh)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.association import associated_labels
from samplehub.labels.graph import CO_OCCURS, IS_A, MAPS_TO, SIMILAR, LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore, LabelGraphStore


def _graph() -> LabelGraph:
    g = LabelGraph()
    g.add_label(
        "water_area", "water_area", "base", level=1, dataset="million_aid", description="water"
    )
    g.add_label(
        "river",
        "river",
        "base",
        level=2,
        dataset="million_aid",
        embedding=[0.1, 0.2],
        osm_tags=["waterway=river"],
        osm_uris=[],
        uncertain=False,
    )
    g.add_label("ds/Rivière", "Rivière", "dataset", dataset="ds", description="unicode ✓")
    g.add_label("ds/water", "water", "dataset", dataset="ds")
    g.add_edge("river", "water_area", IS_A, score=0.6, uncertain=False)
    g.add_edge("ds/Rivière", "river", MAPS_TO, score=0.9, text_sim=0.9, struct_sim=None, why="text")
    g.add_edge("ds/water", "water_area", MAPS_TO, score=0.8, text_sim=0.7, struct_sim=1.0, why="w")
    g.add_edge("ds/water", "river", SIMILAR, score=0.7, text_sim=0.6, struct_sim=0.9)
    g.add_edge(
        "ds/Rivière", "ds/water", CO_OCCURS, key="CO_OCCURS:t", count=12, weight=0.5, evidence="t"
    )
    return g


def _normalised(graph: LabelGraph) -> tuple[list, list]:
    nodes, edges = graph.to_records()
    clean = lambda d: {k: v for k, v in d.items() if v is not None}  # noqa: E731
    return (
        sorted((clean(n) for n in nodes), key=lambda n: n["id"]),
        sorted((clean(e) for e in edges), key=lambda e: (e["source"], e["target"], e["key"])),
    )


@pytest.fixture(params=["embedded", "neo4j"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LabelGraphStore]:
    if request.param == "embedded":
        yield EmbeddedLabelGraphStore(tmp_path)
        return
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        pytest.skip("NEO4J_URI is not set; start a server with infra/neo4j/start.sh")
    from samplehub.labels.neo4j_store import Neo4jLabelGraphStore

    neo = Neo4jLabelGraphStore(
        uri, os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD", "samplehub")
    )
    with neo._driver.session(database=neo.database) as session:
        session.run("MATCH (n) WHERE n:Label OR n:GraphVersion DETACH DELETE n").consume()
    yield neo
    neo.close()


def test_empty_store_has_no_versions_and_load_fails(store: LabelGraphStore) -> None:
    assert store.versions() == []
    with pytest.raises(LabelGraphError, match="no label graph"):
        store.load()


def test_commit_and_load_round_trip(store: LabelGraphStore) -> None:
    graph = _graph()
    assert store.commit(graph, "first") == 1 and graph.version == 1
    loaded = store.load()
    assert loaded.version == 1
    assert _normalised(loaded) == _normalised(graph)
    assert associated_labels(loaded, "river", 2.0) == associated_labels(graph, "river", 2.0)


def test_each_commit_is_a_new_version_and_old_ones_stay_readable(store: LabelGraphStore) -> None:
    first = _graph()
    store.commit(first, "v1")
    second = _graph()
    second.remove_labels(["ds/water"])
    assert store.commit(second, "v2") == 2
    assert [v.version for v in store.versions()] == [1, 2]
    assert [v.message for v in store.versions()] == ["v1", "v2"]
    assert store.versions()[0].labels == 4 and store.versions()[1].labels == 3
    assert "ds/water" in store.load(1).g and "ds/water" not in store.load().g
    with pytest.raises(LabelGraphError, match="version 3 does not exist"):
        store.load(3)


def test_a_cyclic_graph_is_refused_and_leaves_no_version(store: LabelGraphStore) -> None:
    store.commit(_graph(), "good")
    bad = _graph()
    bad.add_edge("water_area", "river", IS_A, score=0.5)
    with pytest.raises(LabelGraphError, match="cycle"):
        store.commit(bad, "bad")
    assert [v.version for v in store.versions()] == [1]
    assert store.load().is_a_cycle() is None


def test_unserialisable_properties_fail_before_writing(tmp_path: Path) -> None:
    store = EmbeddedLabelGraphStore(tmp_path)
    graph = _graph()
    graph.g.nodes["river"]["embedding"] = [float("nan")]
    with pytest.raises(LabelGraphError, match="'river'"):
        store.commit(graph, "nan")
    assert store.versions() == []


def test_neo4j_that_is_down_gives_a_clear_error() -> None:
    pytest.importorskip("neo4j")
    from samplehub.labels.neo4j_store import Neo4jLabelGraphStore

    with pytest.raises(LabelGraphError, match="not reachable"):
        Neo4jLabelGraphStore("bolt://127.0.0.1:1", "neo4j", "x")
