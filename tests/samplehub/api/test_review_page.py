"""The review page end to end in headless Chromium (Debian's ``chromium``, Playwright).

A real uvicorn server on a free loopback port serves the API (query test double); the
browser builds a dataset, ticks accept/reject boxes, exports, and the test checks the
feedback rows and the export files, and saves a screenshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from loopback import uvicorn_thread
from query_double import fake_query_by_image, fake_run_query

from samplehub.api import create_app
from samplehub.export import feedback_rows, parse_spec
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


@pytest.fixture
def server(small_repo: Repository) -> Iterator[str]:
    """The API served by uvicorn in a thread; yields its base URL."""
    with uvicorn_thread(create_app(small_repo, fake_run_query, fake_query_by_image)) as url:
        yield url


def shares_stand_in(repo: Repository | None, sample_ids: list[int]) -> dict[int, dict[str, float]]:
    """Stand-in for the champion ESFormer's ``landcover_stats`` (trained in
    ``tests/assets/test_hir_assets.py``): fixed shares, so the test checks the page's bars."""
    return {sid: {"buildings": 0.6, "trees": 0.3, "water": 0.1 if sid % 2 else 0.01}
            for sid in sample_ids}


def test_review_page_builds_reviews_and_exports(
    server: str, small_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setattr("samplehub.api.routes.builds.landcover_of", shares_stand_in)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server}/review")
            page.fill("#name", "rivers")
            page.fill("#labels", "river, farmland")
            page.fill("#k", "3")
            page.click("#build")
            expect(page.locator("#exact .card")).to_have_count(9)
            expect(page.locator("#supplementary .card")).to_have_count(5)
            expect(page.locator("#supplementary .card .score").first).to_have_text("0.90")
            expect(page.locator("#supplementary .card .reason").first).to_contain_text("via")
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
            expect(page.locator("#export-result")).to_contain_text("exported 10 samples",
                                                                   timeout=60_000)
            export_path = Path(page.locator("#export-result").get_attribute("data-path"))
            page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        finally:
            browser.close()

    spec_id = parse_spec({"name": "rivers", "labels": ["river", "farmland"],
                          "supplementary_per_label": 3}).spec_id
    rows = feedback_rows(small_repo.catalog, spec_id)
    assert sorted(zip(rows["sample_id"], rows["decision"], strict=True)) == sorted(
        [(s, "accept") for s in accepted] + [(rejected, "reject")]
    )
    manifest = pd.read_parquet(export_path / "manifest.parquet")
    assert len(manifest) == 10 and rejected not in set(manifest["sample_id"])
    assert set(manifest.loc[manifest["kind"] == "supplementary", "sample_id"]) == set(accepted)
    for name in ("manifest.csv", "stac/collection.json", "images.zarr", "spec.json"):
        assert (export_path / name).exists()
    assert all((export_path / f).is_file() for f in manifest["file"])
    assert (tmp_path / "review.png").stat().st_size > 10_000


def test_review_page_asks_for_the_api_token_once_and_then_works(
    small_repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server bound beyond loopback (its policy, on loopback here) answers the page's calls
    401 until the page has asked for the token; the cookie then carries it, images too."""
    from playwright.sync_api import expect, sync_playwright

    from samplehub.api.auth import AccessPolicy

    monkeypatch.setattr("samplehub.api.routes.builds.landcover_of", shares_stand_in)
    token = "page-token-1"
    app = create_app(small_repo, fake_run_query, fake_query_by_image,
                     access=AccessPolicy(token, protect_reads=True))
    asked: list[str] = []
    with uvicorn_thread(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: (asked.append(dialog.message),
                                              dialog.accept(token)))
            page.goto(f"{url}/review")
            page.fill("#name", "rivers")
            page.fill("#labels", "river")
            page.click("#build")
            expect(page.locator("#exact .card")).to_have_count(5)
            image = page.locator("#exact .card img").first
            expect(image).to_have_js_property("complete", True)
            assert image.evaluate("img => img.naturalWidth") > 0, "the image request was let in"
            page.click("#build")  # the cookie is set: no second question
            expect(page.locator("#exact .card")).to_have_count(5)
        finally:
            browser.close()
    assert asked == ["This SampleHub server needs its API token:"]
