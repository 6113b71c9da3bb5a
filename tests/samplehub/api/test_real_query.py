"""The API with the real ``run_query`` on a repository without features (exact matches)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from samplehub.api import create_app
from samplehub.labels.graph import IS_A, LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.repository import Repository


def test_build_and_query_with_the_real_query(small_repo: Repository) -> None:
    graph = LabelGraph()
    for name in ("water_area", "river", "farmland", "forest"):
        graph.add_label(name, name, "base")
    graph.add_edge("river", "water_area", IS_A, score=0.5)
    EmbeddedLabelGraphStore(small_repo.config.home_path).commit(graph, "test graph")
    client = TestClient(create_app(small_repo))

    found = client.post("/query", json={"labels": ["river"]})
    assert found.status_code == 200, found.text
    assert found.json()["exact"] == 5
    unknown = client.post("/query", json={"labels": ["glacier"]})
    assert unknown.status_code == 404 and "glacier" in unknown.json()["detail"]
    build = client.post("/build", json={"name": "real", "labels": ["river", "farmland"]})
    assert build.status_code == 200, build.text
    assert build.json()["counts"]["farmland"]["exact"] == 4
