"""POST /query/image's land-cover fields reach the query as one request; hits carry no
proportions before an ESFormer is registered.

The query functions are wrapped to record what the route passes them; image hits come from
the real ``query_by_image`` on the small real repository (``conftest.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from samplehub.api import create_app
from samplehub.repository import Repository
from samplehub.retrieval.query import query_by_image
from samplehub.retrieval.types import LandcoverRequest, QueryResult, QuerySpec


def test_image_query_passes_rerank_weights_and_constraint(real_repo: Repository) -> None:
    seen: list[Any] = []

    def recording(repo: Repository, image: np.ndarray | None = None,
                  sample_id: int | None = None, k: int = 20,
                  landcover: object = None) -> QueryResult:
        seen.append(landcover)
        # the visual search alone: stage 2 needs the champion ESFormer this repository lacks
        return query_by_image(repo, image=image, sample_id=sample_id, k=k)

    client = TestClient(create_app(real_repo, lambda repo, spec: None, recording))
    sid = int(real_repo.catalog.samples(columns=["sample_id"])["sample_id"][0])
    body = client.post("/query/image", data={
        "sample_id": str(sid), "k": "3", "rerank_k": "75", "landcover_weights": "building=4",
        "landcover": "water>=0.2",
    }).json()
    assert seen[-1] == LandcoverRequest(75, {"building": 4.0}, "water>=0.2")
    assert len(body["hits"]) == 3 and {hit["kind"] for hit in body["hits"]} == {"similar"}
    assert all(hit["landcover"] == {} for hit in body["hits"])  # no ESFormer registered
    client.post("/query/image", data={"sample_id": str(sid), "k": "3"})
    assert seen[-1] is None
    bad = client.post("/query/image", data={"sample_id": str(sid), "rerank_k": "75",
                                            "landcover_weights": "building=-1"})
    assert bad.status_code == 422 and "landcover_weights" in bad.text


def test_label_query_passes_rerank_weights_and_constraint(small_repo: Repository) -> None:
    seen: list[QuerySpec] = []

    def recording(repo: Repository, spec: QuerySpec) -> QueryResult:
        seen.append(spec)
        return QueryResult(spec, [], {}, {"total": 0.0})

    client = TestClient(create_app(small_repo, recording))
    ok = client.post("/query", json={"labels": ["residential"], "rerank_k": 75,
                                     "landcover_weights": {"buildings": 4},
                                     "landcover": "water<=0.1"})
    assert ok.status_code == 200
    assert seen[-1].landcover == LandcoverRequest(75, {"buildings": 4.0}, "water<=0.1")
    client.post("/query", json={"labels": ["residential"]})
    assert seen[-1].landcover is None
    bad = client.post("/query", json={"labels": ["residential"], "rerank_k": 0})
    assert bad.status_code == 422 and "rerank_k" in bad.text
