"""The labelling page end to end in headless Chromium (Debian's ``chromium``, Playwright).

A real uvicorn server on a loopback port serves the API with the real query over 40 real
EuroSAT chips (``labelling_fixture``). The browser brushes a cluster in the chip map,
labels it, undoes and redoes, brushes segments of those chips in segment mode and labels
them, and publishes. Publishing ingests the new dataset; the test then merges the label
trees into the label graph as the ``label_graph`` asset does and queries the new label
through ``POST /query`` (the real ``run_query``): the brushed chips come back. The
scripted session's labels per minute are printed and recorded as a test property.
Set ``LABELLING_SCREENSHOT=docs/labelling_page.png`` to keep the page's screenshot.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from labelling_fixture import VIEW, labelled_home
from loopback import uvicorn_thread
from test_review_page import CHROMIUM, CHROMIUM_ARGS

from samplehub.api import create_app
from samplehub.labelling.view import LabellingView
from samplehub.labels.cooccurrence import catalog_multilabel_samples
from samplehub.labels.workflow import catalog_label_trees, commit_label_trees
from samplehub.repository import Repository

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium chromium-driver)"),
]
LABEL = "industrial roofs"
SEGMENT_LABEL = "roof"
CLUSTER = 6
"""The six chips furthest left in the map: the fixture's bright industrial chips."""


@dataclass
class Served:
    """The server's URL and repository."""

    url: str
    repo: Repository


@pytest.fixture
def served(labelling_home: Path, tmp_path: Path) -> Iterator[Served]:
    """The API (real query) over a fresh labelled home, served by uvicorn in a thread."""
    repo, _ = labelled_home(labelling_home, tmp_path / "home", tmp_path / "watched")
    with uvicorn_thread(create_app(repo)) as url:
        yield Served(url, repo)


@dataclass
class Session:
    """What the scripted brushing session did."""

    chips: list[str]
    segments: int
    seconds: float

    @property
    def labels_per_minute(self) -> float:
        """Chips and segments labelled per minute of the session."""
        return (len(self.chips) + self.segments) / (self.seconds / 60)


def brush(page: Any, box: tuple[float, float, float, float]) -> None:
    """Drag a rectangle over the canvas between canvas pixels (x0, y0) and (x1, y1)."""
    rect = page.locator("#scatter").bounding_box()
    x0, y0, x1, y1 = box
    page.mouse.move(rect["x"] + x0, rect["y"] + y0)
    page.mouse.down()
    page.mouse.move(rect["x"] + (x0 + x1) / 2, rect["y"] + (y0 + y1) / 2, steps=4)
    page.mouse.move(rect["x"] + x1, rect["y"] + y1, steps=4)
    page.mouse.up()


def screen_points(page: Any) -> list[dict[str, Any]]:
    """Every point of the map with its canvas pixel position."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => window.labelling.state.points.map((p) => {
            const [sx, sy] = window.labelling.toScreen(p.x, p.y);
            return {key: p.key, id: p.id, segment: p.segment, sx, sy};
        })"""
    )


def inside(points: list[dict[str, Any]], box: tuple[float, float, float, float]) -> set[str]:
    """Keys of the points inside a canvas-pixel box."""
    x0, y0, x1, y1 = box
    return {p["key"] for p in points if x0 <= p["sx"] <= x1 and y0 <= p["sy"] <= y1}


def around(points: list[dict[str, Any]], pad: float = 6) -> tuple[float, float, float, float]:
    """A canvas-pixel box around ``points``."""
    xs, ys = [p["sx"] for p in points], [p["sy"] for p in points]
    return min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad


def scripted_session(page: Any, url: str, cluster: Callable[[list[dict]], list[dict]]
                     ) -> Session:
    """Brush a chip cluster, label it, undo, redo; brush its segments, label them.

    Args:
        page: a Playwright page.
        url: the server's base URL.
        cluster: picks the chip points to brush from all of them (with canvas positions).
    """
    import re

    from playwright.sync_api import expect

    page.goto(f"{url}/labelling")
    expect(page.locator("body")).to_have_attribute("data-loaded", f"{VIEW}:chip:40")
    points = screen_points(page)
    box = around(cluster(points))
    expected = inside(points, box)
    started = time.perf_counter()
    brush(page, box)
    selected = set(page.evaluate("() => [...window.labelling.state.selected]"))
    assert selected == expected
    expect(page.locator("#images .tile")).to_have_count(len(expected))
    page.fill("#label", LABEL)
    page.click("#apply")
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-chips-labelled", str(len(expected)))
    page.click("#undo")
    expect(progress).to_have_attribute("data-chips-labelled", "0")
    page.click("#redo")
    expect(progress).to_have_attribute("data-chips-labelled", str(len(expected)))

    page.check("input[name=mode][value=segment]")  # the brushed chips' segments
    expect(page.locator("body")).to_have_attribute(
        "data-loaded", re.compile(rf"^{VIEW}:segment:\d+$"))
    segments = screen_points(page)
    assert {p["id"] for p in segments} == expected
    left = sorted(segments, key=lambda p: p["sx"])[: max(1, len(segments) // 4)]
    segment_box = around(left, pad=2)
    chosen = inside(segments, segment_box)
    brush(page, segment_box)
    page.fill("#label", SEGMENT_LABEL)
    page.click("#apply")
    expect(progress).to_have_attribute("data-segments-labelled", str(len(chosen)))
    seconds = time.perf_counter() - started
    return Session(sorted(expected), len(chosen), seconds)


def merge_label_graph(repo: Repository) -> None:
    """What the ``label_graph`` asset does after an ingest: every dataset's tree, merged."""
    found = catalog_label_trees(repo.catalog, list(repo.catalog.datasets()["dataset"]))
    commit_label_trees(repo, found.trees, catalog_multilabel_samples(repo.catalog, found.trees))


def test_brush_label_publish_and_query(
    served: Served, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 980})
            session = scripted_session(
                page, served.url, lambda points: sorted(points, key=lambda q: q["sx"])[:CLUSTER]
            )
            page.click("#publish")
            result = page.locator("#publish-result")
            expect(result).to_have_attribute("data-dataset", "chips-labels-v1", timeout=30_000)
            expect(result).to_contain_text(f"published {len(session.chips)} chips in 1 class as")
            page.check("input[name=mode][value=chip]")
            expect(page.locator("body")).to_have_attribute("data-loaded", f"{VIEW}:chip:40")
            brush(page, around(sorted(screen_points(page), key=lambda q: q["sx"])[:CLUSTER]))
            page.screenshot(path=str(tmp_path / "labelling.png"), full_page=True)
            page.click("#publish")  # unchanged labels: no second dataset
            expect(page.locator("#status")).to_have_text("nothing new to publish")
        finally:
            browser.close()

    rate = session.labels_per_minute
    print(f"scripted brushing session: {len(session.chips)} chips and {session.segments} "
          f"segments labelled in {session.seconds:.1f} s = {rate:.0f} labels per minute")
    record_property("labels_per_minute", round(rate, 1))
    assert (tmp_path / "labelling.png").stat().st_size > 10_000
    if os.environ.get("LABELLING_SCREENSHOT"):
        shutil.copy(tmp_path / "labelling.png", os.environ["LABELLING_SCREENSHOT"])

    repo = served.repo
    sources = repo.catalog.read("samples", VIEW).to_pandas().set_index("sample_id")
    classes = sources.loc[[int(c) for c in session.chips], "labels"].map(tuple)
    print(f"brushed cluster's EuroSAT classes: {classes.value_counts().to_dict()}")
    assert sorted(repo.catalog.datasets()["dataset"]) == ["chips", "chips-labels-v1"]
    merge_label_graph(repo)
    found = httpx.post(f"{served.url}/query", timeout=60,
                       json={"labels": [LABEL], "include_supplementary": False})
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    published = repo.catalog.read("samples", "chips-labels-v1").to_pandas()
    assert {h["sample_id"] for h in hits} == set(published["sample_id"])
    # each hit is the published copy of a brushed chip: same pixels as its source
    assert set(published["content_hash"]) == set(
        sources.loc[[int(c) for c in session.chips], "content_hash"])
    view = LabellingView.open(repo.config.home_path, VIEW)
    assert view.progress().segments_labelled == session.segments
    masks = list((Path(repo.config.watch_root) / "chips-labels-v1" / ".masks").glob("*.png"))
    assert masks and len(masks) <= len(session.chips)
