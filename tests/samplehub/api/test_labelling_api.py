"""The labelling routes with a TestClient over 40 real EuroSAT chips (labelling_fixture)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from labelling_fixture import VIEW, labelled_home
from PIL import Image

from samplehub.api import create_app
from samplehub.repository import Repository


@pytest.fixture
def ingested(labelling_home: Path) -> Path:
    return labelling_home


@pytest.fixture
def served(ingested: Path, tmp_path: Path) -> tuple[TestClient, Repository, pd.DataFrame]:
    repo, chips = labelled_home(ingested, tmp_path / "home", tmp_path / "watched")
    # the labelling routes call no query: the default (real) query functions stay unused
    return TestClient(create_app(repo)), repo, chips


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_views_points_and_pictures(served: tuple[TestClient, Repository, pd.DataFrame]) -> None:
    client, repo, chips = served
    assert client.get("/labelling/views").json() == [
        {**client.get(f"/labelling/views/{VIEW}").json()}]
    points = client.get(f"/labelling/views/{VIEW}/chips").json()
    assert len(points) == 40 and {p["id"] for p in points} == set(chips["sample_id"])
    first = chips["sample_id"][0]
    mine = client.get(f"/labelling/views/{VIEW}/segments", params={"chips": first}).json()
    assert mine and {p["id"] for p in mine} == {first}
    assert len(client.get(f"/labelling/views/{VIEW}/segments").json()) > len(mine)

    composite = picture(client.get(f"/labelling/views/{VIEW}/chips/{first}/composite.png").content)
    _, pixels = repo.image(int(first))
    assert np.array_equal(composite, pixels.transpose(1, 2, 0))  # uint8 RGB shown as stored
    segment = mine[0]["segment"]
    overlay = picture(client.get(f"/labelling/views/{VIEW}/chips/{first}/segments.png",
                                 params={"segments": str(segment)}).content)
    assert overlay.shape == composite.shape and not np.array_equal(overlay, composite)

    schema = client.get("/openapi.json").json()
    assert "/labelling/views/{dataset}/publish" in schema["paths"]
    assert "LabelRequest" in schema["components"]["schemas"]
    page = client.get("/labelling")
    assert page.status_code == 200 and "labelling.js" in page.text


def test_label_undo_redo_progress_and_publish(
    served: tuple[TestClient, Repository, pd.DataFrame],
) -> None:
    client, repo, chips = served
    base = f"/labelling/views/{VIEW}"
    water = chips[chips["relpath"].str.startswith("SeaLake/")]["sample_id"].tolist()
    done = client.post(f"{base}/labels", json={"mode": "chip", "label": "lake", "chips": water})
    assert done.status_code == 200, done.text
    assert done.json()["progress"]["chips_labelled"] == 10
    segment = {"id": water[0], "segment": 1}
    done = client.post(f"{base}/labels",
                       json={"mode": "segment", "label": "reed", "segments": [segment]})
    assert done.json()["segments"] == [{**segment, "label": "reed"}]
    assert client.post(f"{base}/undo").json()["segments"] == []
    redone = client.post(f"{base}/redo").json()
    assert redone["progress"]["segments_labelled"] == 1 and redone["progress"]["can_undo"]
    assert client.get(f"{base}/progress").json() == redone["progress"]
    assert {p["id"]: p["label"] for p in client.get(f"{base}/chips").json()}[water[0]] == "lake"

    published = client.post(f"{base}/publish", json={})
    assert published.status_code == 200, published.text
    body = published.json()
    assert (body["dataset"], body["chips_published"], body["masks"], body["added"]) == (
        "chips-labels-v1", 10, 1, 10)
    assert body["chips_unlabelled"] == 30 and body["segment_labels"] == ["reed"]
    assert len(repo.catalog.read("samples", "chips-labels-v1")) == 10
    again = client.post(f"{base}/publish").json()
    assert again["unchanged"] and again["added"] == 0 and "unchanged" in again["message"]
    named = client.post(f"{base}/publish", json={"name": "lakes"}).json()
    assert named["dataset"] == "lakes-v1" and named["added"] == 10


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("get", "/labelling/views/nope/chips", None, 404, "no labelling view 'nope'"),
        ("get", "/labelling/views/..x/chips", None, 422, "dataset name"),
        ("get", f"/labelling/views/{VIEW}/chips/123/composite.png", None, 404, "no chip '123'"),
        ("get", f"/labelling/views/{VIEW}/segments?chips=5", None, 404, "has no chips ['5']"),
        ("post", f"/labelling/views/{VIEW}/labels",
         {"mode": "chip", "label": "x", "chips": []}, 422, "selection is empty"),
        ("post", f"/labelling/views/{VIEW}/labels",
         {"mode": "chip", "label": "a/b", "chips": ["1"]}, 422, "label 'a/b'"),
        ("post", f"/labelling/views/{VIEW}/labels",
         {"mode": "chip", "label": "b", "chips": ["1"]}, 404, "has no chips ['1']"),
        ("post", f"/labelling/views/{VIEW}/labels", {"mode": "pixel", "label": "x"}, 422, None),
        ("post", f"/labelling/views/{VIEW}/publish", None, 422, "no chip has a label yet"),
        ("post", f"/labelling/views/{VIEW}/publish", {"name": "../up"}, 422, None),
    ],
)
def test_bad_requests_get_clear_errors(
    served: tuple[TestClient, Repository, pd.DataFrame], method: str, path: str,
    body: dict | None, status: int, detail: str | None,
) -> None:
    client, _, _ = served
    response = getattr(client, method)(path, **({"json": body} if body is not None else {}))
    assert response.status_code == status, response.text
    if detail:
        assert detail in response.json()["detail"]


def test_segment_overlay_rejects_unknown_segments(
    served: tuple[TestClient, Repository, pd.DataFrame],
) -> None:
    client, _, chips = served
    first = chips["sample_id"][0]
    response = client.get(f"/labelling/views/{VIEW}/chips/{first}/segments.png",
                          params={"segments": "999"})
    assert response.status_code == 404 and "999" in response.json()["detail"]
    bad = client.get(f"/labelling/views/{VIEW}/chips/{first}/segments.png",
                     params={"segments": "a"})
    assert bad.status_code == 422 and "segment ids" in bad.json()["detail"]
