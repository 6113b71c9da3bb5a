"""The HTTP API over a small real repository with the real three-step query, no doubles.

Real images (UC Merced: golf course, river, freeway; EuroSAT: River, Highway; 100 each, and
UC Merced's multi-label annotation of the same images) are ingested, encoded, merged into
the label graph and indexed by the shipped jobs, once per session (``conftest.py``). The
API then answers label queries (exact hits from both datasets plus supplementary samples),
query-by-image and the thumbnails, through ``create_app(repo)`` with its default query
functions.
"""

from __future__ import annotations

import pytest
from asset_jobs import REAL_PER_CLASS
from fastapi.testclient import TestClient

from samplehub.api import create_app
from samplehub.repository import Repository


@pytest.fixture(scope="module")
def api(real_repo: Repository) -> TestClient:
    """The shared real repository of the picked classes (these tests only read it)."""
    return TestClient(create_app(real_repo))


def test_a_label_query_returns_exact_hits_from_both_datasets_and_supplementary(
    api: TestClient,
) -> None:
    body = api.post("/query", json={"labels": ["river"], "k": 20}).json()
    exact = [h for h in body["hits"] if h["kind"] == "exact"]
    supplementary = [h for h in body["hits"] if h["kind"] == "supplementary"]
    assert {h["dataset"] for h in exact} == {"ucmerced", "eurosat"}
    assert len(exact) == body["exact"] == 2 * REAL_PER_CLASS
    assert 0 < len(supplementary) == body["supplementary"] <= 20, (body["message"], body["plan"])
    assert not {h["sample_id"] for h in supplementary} & {h["sample_id"] for h in exact}
    assert all(h["reason"] for h in supplementary), "each supplementary hit says why"


def test_query_by_image_finds_its_own_class(api: TestClient) -> None:
    golf = api.post("/query", json={"labels": ["golf course"]}).json()
    assert golf["exact"] == REAL_PER_CLASS
    probes = [h["sample_id"] for h in golf["hits"][:5]]
    nearest = []
    for probe in probes:
        found = api.post("/query/image", data={"sample_id": str(probe), "k": "10"}).json()
        hits = found["hits"]
        # copies of one image in both UC Merced datasets are one hit, in one of the k places
        assert len({h["relpath"] for h in hits}) == len(hits) == 10
        assert probe not in {h["sample_id"] for h in hits}
        assert all(h["kind"] == "similar" for h in hits)
        nearest.append(hits[0]["relpath"].split("/")[0])
    assert nearest.count("golfcourse") >= 4, nearest
    probe = probes[0]
    thumbnail = api.get(f"/samples/{probe}/thumbnail.png")
    assert thumbnail.status_code == 200 and thumbnail.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_uploaded_image_gets_k_different_images(api: TestClient) -> None:
    """UC Merced images are catalogued twice (``ucmerced``, ``ucmerced_multilabel``); each
    of the k hits is still another image, so the answer is k hits, not fewer."""
    golf = api.post("/query", json={"labels": ["golf course"], "include_supplementary": False})
    probe = golf.json()["hits"][0]["sample_id"]
    picture = api.get(f"/samples/{probe}/thumbnail.png").content
    for k in (3, 10):
        found = api.post("/query/image", files={"file": ("golf.png", picture, "image/png")},
                         data={"k": str(k)}).json()["hits"]
        assert len({h["relpath"] for h in found}) == len(found) == k, found
        assert all(h["copies"] for h in found if h["dataset"].startswith("ucmerced"))
