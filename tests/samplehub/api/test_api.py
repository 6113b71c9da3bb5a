"""The HTTP API with FastAPI's TestClient and the real query functions.

Query, build, feedback and export run on the small real repository (``conftest.py``);
expectations come from calling the real ``run_query`` / builder with the same spec. The
sample, composite and label-graph routes run on the small fixture repository, whose
BigEarthNet patch has the 12 bands a false-colour composite needs.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from asset_jobs import REAL_PER_CLASS
from fastapi.testclient import TestClient
from hostile import png_header
from PIL import Image

from samplehub.api import create_app
from samplehub.api.models import QueryRequest
from samplehub.export import build_dataset, parse_spec
from samplehub.labels.graph import CO_OCCURS, IS_A, LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.repository import Repository
from samplehub.retrieval.query import run_query

SPEC = {"name": "rivers", "labels": ["river", "golf course"],
        "split": {"ratios": {"train": 0.5, "val": 0.5}, "seed": 1}}


@pytest.fixture
def client(small_repo: Repository) -> TestClient:
    """The fixture repository (no features, no label graph) with the real query functions."""
    return TestClient(create_app(small_repo))


@pytest.fixture
def real(real_repo: Repository) -> TestClient:
    """The shared real repository, for requests that write nothing."""
    return TestClient(create_app(real_repo))


def sample_id(repo: Repository, dataset: str, label: str) -> int:
    return int(repo.catalog.samples(dataset, label, columns=["sample_id"])["sample_id"][0])


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/query", "/query/image", "/build", "/feedback", "/export", "/labels",
                 "/samples/{sample_id}/composite.png", "/labels/{label}/associated"):
        assert path in paths
    assert "swagger" in client.get("/docs").text.lower()
    assert client.get("/review").headers["content-type"].startswith("text/html")


def test_query_returns_exact_and_supplementary_and_hides_rejected(real_copy: Repository) -> None:
    client = TestClient(create_app(real_copy))
    body = {"labels": ["river"], "k": 3}
    expected = run_query(real_copy, QueryRequest(**body).query_spec()).hits
    supplementary = [h for h in expected if h.kind == "supplementary"]
    first = client.post("/query", json=body).json()
    # EuroSAT River and UC Merced river both map to the unified 'river'
    assert (first["exact"], first["supplementary"]) == (2 * REAL_PER_CLASS, 3)
    assert [h["sample_id"] for h in first["hits"]] == [h.sample_id for h in expected]
    hit = next(h for h in first["hits"] if h["kind"] == "supplementary")
    assert hit["path"] == supplementary[0].path and hit["path"][0] == "river"
    assert hit["reason"] == supplementary[0].reason and hit["thumbnail"].endswith(".png")
    response = client.post("/feedback", json={
        "spec_id": first["spec_id"], "who": "me",
        "decisions": [{"sample_id": hit["sample_id"], "decision": "reject"}],
    })
    assert response.json() == {"spec_id": first["spec_id"], "recorded": 1}
    second = client.post("/query", json=body).json()
    assert second["supplementary"] == 2 and "1 rejected earlier" in second["message"]
    rows = client.get("/feedback", params={"spec_id": first["spec_id"]}).json()
    assert [(r["sample_id"], r["decision"], r["who"]) for r in rows] == [
        (hit["sample_id"], "reject", "me")
    ]


def test_empty_result_is_200_with_a_message(real: TestClient) -> None:
    # the real images carry no footprint, so any bbox leaves no candidate
    response = real.post("/query", json={"labels": ["river"],
                                         "constraints": {"bbox": [5, 45, 6, 46]}})
    assert response.status_code == 200
    assert response.json()["hits"] == [] and "no sample matches" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"),
    [
        ("post", "/query", {"json": {"labels": ["glacier"]}}, 404, "'glacier' is not in"),
        ("post", "/query", {"json": {"labels": []}}, 422, "labels"),
        ("post", "/query", {"json": {"labels": ["river"], "k": 0}}, 422, "k"),
        ("post", "/query", {"json": {"labels": ["river"], "constraints": {"bbox": [1, 2]}}},
         422, "bbox"),
        ("post", "/query", {"content": b"{not json", "headers": {"content-type":
                                                                 "application/json"}},
         422, "JSON"),
        ("post", "/build", {"json": {"name": "x", "labels": ["river"], "quotas": {"lake": 1}}},
         422, "quotas name labels"),
        ("post", "/build", {"json": {"name": "x", "labels": ["river"], "split": {"seed": -1}}},
         422, "seed"),
        ("post", "/feedback", {"json": {"spec_id": "s", "decisions": [
            {"sample_id": 1, "decision": "maybe"}]}}, 422, "decision"),
        ("post", "/feedback", {"json": {"spec_id": "s", "decisions": [
            {"sample_id": 1, "decision": "reject"}]}}, 404, "not in the catalog"),
        ("post", "/export", {"json": {"build_id": "nope"}}, 404, "no logical dataset"),
        ("post", "/export", {"json": {"build_id": "x", "name": "../../etc"}}, 422, "name"),
        ("get", "/builds/nope", {}, 404, "no logical dataset"),
        ("get", "/samples/42", {}, 404, "sample 42 is not in the catalog"),
        ("get", "/samples/abc", {}, 422, "sample_id"),
        ("get", "/samples/99999999999999999999999", {}, 422, "sample_id"),
        ("get", "/samples/-1/thumbnail.png", {}, 422, "sample_id"),
        ("get", "/samples/42/thumbnail.png", {}, 404, "sample 42"),
        ("post", "/query/image", {"data": {"k": "3"}}, 422, "exactly one"),
        ("post", "/query/image", {"files": {"file": ("x.png", b"garbage", "image/png")}},
         422, "not a readable image"),
        ("post", "/query/image", {"files": {"file": ("bomb.png", png_header(90_000, 90_000),
                                                      "image/png")}}, 422, "bomb.png"),
        ("post", "/query/image", {"files": {"file": ("big.png", b"\0" * 20_000_001,
                                                      "image/png")}}, 413, "max_upload_mb"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    real: TestClient, method: str, path: str, kwargs: dict, status: int, needle: str
) -> None:
    response = getattr(real, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_labels_without_a_label_graph_is_a_clear_4xx(client: TestClient) -> None:
    response = client.get("/labels")
    assert response.status_code == 422 and "no label graph" in response.text


def test_error_messages_do_not_reveal_server_paths(
    client: TestClient, small_repo: Repository
) -> None:
    home = str(small_repo.config.home_path)
    for path in ("/samples/42", "/builds/nope", "/labels"):
        response = client.get(path)
        assert 400 <= response.status_code < 500
        assert home not in response.text and "/tmp" not in response.text, response.text


def test_build_feedback_export_round_trip(real_copy: Repository) -> None:
    client = TestClient(create_app(real_copy))
    expected = build_dataset(real_copy, parse_spec(SPEC))
    build = client.post("/build", json=SPEC).json()
    assert build["counts"] == expected.counts() and "supplementary" in build["message"]
    assert build["counts"]["river"]["exact"] == 2 * REAL_PER_CLASS
    assert [m["sample_id"] for m in build["members"]] == [m.sample_id for m in expected.members]
    assert client.get(f"/builds/{build['build_id']}").json() == build
    supplementary = [m for m in build["members"] if m["kind"] == "supplementary"]
    decisions = [{"sample_id": supplementary[0]["sample_id"], "decision": "accept"}]
    client.post("/feedback", json={"spec_id": build["spec_id"], "decisions": decisions})
    report = client.post("/export", json={"build_id": build["build_id"], "name": "mine",
                                          "supplementary": "accepted"}).json()
    out = Path(report["path"])
    assert out == real_copy.config.home_path / "exports" / "mine"
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == report["samples"] == len(build["members"]) - len(supplementary) + 1
    again = client.post("/export", json={"build_id": build["build_id"], "name": "mine"})
    assert again.status_code == 409 and "exists" in again.json()["detail"]


def test_sample_thumbnail_and_composites(client: TestClient, small_repo: Repository) -> None:
    s2 = sample_id(small_repo, "ben", "Pastures")
    row = client.get(f"/samples/{s2}").json()
    assert row["footprint"]["type"] == "Polygon" and "B08" in row["bands"]
    thumb = Image.open(io.BytesIO(client.get(f"/samples/{s2}/thumbnail.png").content))
    assert thumb.mode == "RGB"
    false_colour = client.get(f"/samples/{s2}/composite.png",
                              params={"bands": "B08,B04,B03", "stretch": "1,99"})
    assert false_colour.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(false_colour.content)).size == (12, 12)
    natural = client.get(f"/samples/{s2}/composite.png").content
    assert natural != false_colour.content
    for params, needle in [({"bands": "B08,B04"}, "three"), ({"bands": "B08,B04,X"}, "not in"),
                           ({"stretch": "98,2"}, "low < high"), ({"stretch": "a"}, "percentiles")]:
        response = client.get(f"/samples/{s2}/composite.png", params=params)
        assert response.status_code == 422 and needle in response.json()["detail"]


def test_query_by_image_upload_and_sample_id(real: TestClient, real_repo: Repository) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 30)).save(buffer, format="PNG")
    upload = real.post("/query/image", files={"file": ("q.png", buffer.getvalue())},
                       data={"k": "4"}).json()
    assert len(upload["hits"]) == 4 and {h["kind"] for h in upload["hits"]} == {"similar"}
    scores = [h["score"] for h in upload["hits"]]
    assert scores == sorted(scores, reverse=True), "most similar first"
    river = sample_id(real_repo, "eurosat", "River")
    by_id = real.post("/query/image", data={"sample_id": str(river), "k": "50"}).json()
    assert len(by_id["hits"]) == 50 and river not in {h["sample_id"] for h in by_id["hits"]}


def test_labels_and_associated_labels(client: TestClient, small_repo: Repository) -> None:
    graph = LabelGraph()
    for name in ("water_area", "river", "forest", "bridge"):
        graph.add_label(name, name, "base")
    graph.add_label("ds/Forest", "Forest", "dataset", dataset="ds")
    graph.add_edge("river", "water_area", IS_A, score=0.5)
    graph.add_edge("forest", "water_area", IS_A, score=0.8)
    graph.add_edge("river", "bridge", CO_OCCURS, key="CO_OCCURS:t", count=30, weight=0.8)
    EmbeddedLabelGraphStore(small_repo.config.home_path).commit(graph, "test graph")
    labels = {label["id"]: label for label in client.get("/labels").json()}
    assert labels["river"]["parents"] == ["water_area"]
    assert [label["id"] for label in client.get("/labels", params={"dataset": "ds"}).json()] == [
        "ds/Forest"
    ]
    found = client.get("/labels/river/associated", params={"max_distance": 3}).json()
    by_label = {a["label"]: a for a in found}
    assert by_label["bridge"]["relations"] == ["co_occurs"]
    assert by_label["forest"]["path"] == ["river", "water_area", "forest"]
    assert client.get("/labels/ds/Forest/associated").status_code == 200
    missing = client.get("/labels/glacier/associated")
    assert missing.status_code == 422 and "glacier" in missing.json()["detail"]
