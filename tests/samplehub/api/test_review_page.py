"""The review page end to end in headless Chromium (Debian's ``chromium``, Playwright).

A real uvicorn server on a free loopback port serves the API over a copy of the small real
repository (``conftest.py``) with the real three-step query; the browser builds a dataset,
ticks accept/reject boxes, exports, and the test checks the page against the real builder's
result for the same spec, the feedback rows and the export files, and saves a screenshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from asset_jobs import REAL_PER_CLASS
from loopback import uvicorn_thread

from samplehub.api import create_app
from samplehub.export import LogicalDataset, build_dataset, feedback_rows, parse_spec
from samplehub.repository import Repository

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium chromium-driver)"),
]


# what the page sends for its form below ("Supplementary per label" is its field #k)
PAGE_SPEC = {"name": "rivers", "labels": ["river", "golf course"], "supplementary_per_label": 3}


@pytest.fixture
def server(real_copy: Repository) -> Iterator[str]:
    """The API of the real repository served by uvicorn in a thread; yields its base URL."""
    with uvicorn_thread(create_app(real_copy)) as url:
        yield url


def expected_build(repo: Repository, spec: dict) -> LogicalDataset:
    """What the real query and builder return for ``spec``, computed beside the page."""
    return build_dataset(repo, parse_spec(spec))


def shares_stand_in(repo: Repository | None, sample_ids: list[int]) -> dict[int, dict[str, float]]:
    """Stand-in for the champion ESFormer's ``landcover_stats`` (trained in
    ``tests/assets/test_hir_assets.py``): fixed shares, so the test checks the page's bars."""
    return {sid: {"buildings": 0.6, "trees": 0.3, "water": 0.1 if sid % 2 else 0.01}
            for sid in sample_ids}


def test_review_page_builds_reviews_and_exports(
    server: str, real_copy: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setattr("samplehub.api.routes.builds.landcover_of", shares_stand_in)
    members = expected_build(real_copy, PAGE_SPEC).members
    exact = [m.sample_id for m in members if m.kind == "exact"]
    supplementary = [m for m in members if m.kind == "supplementary"]
    # EuroSAT River and UC Merced river both map to 'river'; three associated samples a label
    assert len(exact) == 3 * REAL_PER_CLASS and len(supplementary) == 2 * 3

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server}/review")
            page.fill("#name", "rivers")
            page.fill("#labels", "river, golf course")
            page.fill("#k", "3")
            page.click("#build")
            expect(page.locator("#exact .card")).to_have_count(len(exact))
            expect(page.locator("#supplementary .card")).to_have_count(len(supplementary))
            shown = page.locator("#supplementary .card").evaluate_all(
                "cards => cards.map(c => c.dataset.sampleId)")
            assert [int(s) for s in shown] == [m.sample_id for m in supplementary]
            expect(page.locator("#supplementary .card .score").first).to_have_text(
                f"{supplementary[0].score:.2f}")
            expect(page.locator("#supplementary .card .reason").first).to_contain_text(
                supplementary[0].reason)
            bar = page.locator("#exact .card .landcover").first
            expect(bar).to_have_attribute("title", re.compile(r"^buildings 60%, trees 30%"))
            widths = [bar.locator("span").nth(i).get_attribute("style") for i in range(2)]
            assert "width: 60%" in widths[0] and "width: 30%" in widths[1]

            supplementary = page.locator("#supplementary .card")
            accepted = [int(supplementary.nth(i).get_attribute("data-sample-id")) for i in (0, 1)]
            for i in (0, 1):
                supplementary.nth(i).locator("input.keep-box").check()
                expect(supplementary.nth(i)).to_have_attribute("data-recorded", "accept")
            rejected_card = page.locator("#exact .card").first
            rejected = int(rejected_card.get_attribute("data-sample-id"))
            rejected_card.locator("input.keep-box").uncheck()
            expect(rejected_card).to_have_attribute("data-recorded", "reject")

            page.click("#export")
            # the export writes Zarr, STAC and manifests: slow on a loaded 2-core machine
            exported = len(exact) - 1 + len(accepted)
            expect(page.locator("#export-result")).to_contain_text(
                f"exported {exported} samples", timeout=60_000)
            export_path = Path(page.locator("#export-result").get_attribute("data-path"))
            page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        finally:
            browser.close()

    rows = feedback_rows(real_copy.catalog, parse_spec(PAGE_SPEC).spec_id)
    assert sorted(zip(rows["sample_id"], rows["decision"], strict=True)) == sorted(
        [(s, "accept") for s in accepted] + [(rejected, "reject")]
    )
    manifest = pd.read_parquet(export_path / "manifest.parquet")
    assert len(manifest) == exported and rejected not in set(manifest["sample_id"])
    assert set(manifest.loc[manifest["kind"] == "exact", "sample_id"]) == set(exact) - {rejected}
    assert set(manifest.loc[manifest["kind"] == "supplementary", "sample_id"]) == set(accepted)
    for name in ("manifest.csv", "stac/collection.json", "images.zarr", "spec.json"):
        assert (export_path / name).exists()
    assert all((export_path / f).is_file() for f in manifest["file"])
    assert (tmp_path / "review.png").stat().st_size > 10_000


def test_review_page_asks_for_the_api_token_once_and_then_works(
    real_copy: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server bound beyond loopback (its policy, on loopback here) answers the page's calls
    401 until the page has asked for the token; the cookie then carries it, images too."""
    from playwright.sync_api import expect, sync_playwright

    from samplehub.api.auth import AccessPolicy

    monkeypatch.setattr("samplehub.api.routes.builds.landcover_of", shares_stand_in)
    token = "page-token-1"
    counts = expected_build(real_copy, {"name": "golf", "labels": ["golf course"]}).counts()
    app = create_app(real_copy, access=AccessPolicy(token, protect_reads=True))
    asked: list[str] = []
    with uvicorn_thread(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: (asked.append(dialog.message),
                                              dialog.accept(token)))
            page.goto(f"{url}/review")
            page.fill("#name", "golf")
            page.fill("#labels", "golf course")
            page.click("#build")
            expect(page.locator("#exact .card")).to_have_count(counts["golf course"]["exact"])
            image = page.locator("#exact .card img").first
            expect(image).to_have_js_property("complete", True)
            assert image.evaluate("img => img.naturalWidth") > 0, "the image request was let in"
            page.click("#build")  # the cookie is set: no second question
            expect(page.locator("#exact .card")).to_have_count(counts["golf course"]["exact"])
        finally:
            browser.close()
    assert asked == ["This SampleHub server needs its API token:"]
