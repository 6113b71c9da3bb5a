"""The labelling page over a view the pipeline built, as a picture for the README.

Data: real, the OSCD Sentinel-2 scenes as the ``oscd_tiles`` source (551 chips of 100 px,
13 bands). The script ingests them into ``--home`` when they are not there, materializes the
``build_labelling_view`` job (FCM -> U-Net -> SLIC graphs -> GNN -> chip similarity -> UMAP,
``conf/labelling/default.yaml``) in-process on that home's Dagster instance unless the view
exists, serves the API with uvicorn on a loopback port, opens ``/labelling`` in headless
Chromium, brushes the chips of one map region and writes ``docs/labelling_page.png`` and
``bench/results/labelling_page.json`` (stage seconds from the runs' metadata, the brushed
chip count).

  python bench/labelling_page.py --home /tmp/labelling_home
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, machine, require_data, write_json

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "labelling_page.png"
DATASET = "oscd_tiles"
STAGES = ("fcm_targets", "unet_model", "segment_graphs", "gnn_model", "chip_embeddings")


def build_view(home: Path) -> dict[str, Any]:
    """Ingest the tiles if needed and run the labelling job; the stages' metadata."""
    from dagster import AssetKey, DagsterInstance

    from assets.partitions import dataset_partitions
    from orchestration.definitions import defs
    from samplehub.instance import write_instance_yaml
    from samplehub.repository import Repository

    repo = Repository.open()
    known = repo.catalog.table("datasets") is not None and DATASET in set(
        repo.catalog.datasets()["dataset"])
    if not known:
        repo.ingest(repo.source_spec(DATASET))
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    write_instance_yaml(repo.config, home / "dagster")
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, [DATASET])
        view = home / "labelling" / DATASET / "current"
        if not view.is_file():
            result = defs.resolve_job_def("build_labelling_view").execute_in_process(
                partition_key=DATASET, instance=instance, raise_on_error=True)
            assert result.success
        stages = {}
        for name in STAGES:
            record = instance.fetch_materializations(AssetKey(name), limit=1).records[0]
            meta = record.asset_materialization.metadata  # type: ignore[union-attr]
            stages[name] = {k: v.value for k, v in meta.items()}
    return stages


def screenshot(home: Path) -> dict[str, Any]:
    """Serve the API, brush one region of the chip map, write the picture."""
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    from samplehub.api import create_app
    from samplehub.repository import Repository

    server = uvicorn.Server(uvicorn.Config(create_app(Repository.open()), host="127.0.0.1",
                                           port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 980})
                page.goto(f"http://127.0.0.1:{port}/labelling")
                expect(page.locator("body")).to_have_attribute(
                    "data-loaded", f"{DATASET}:chip:551", timeout=60_000)
                points = page.evaluate(
                    """() => window.labelling.state.points.map((p) => {
                        const [sx, sy] = window.labelling.toScreen(p.x, p.y);
                        return {sx, sy};
                    })""")
                # The 24 chips nearest the map's leftmost point: one region of the map.
                first = min(points, key=lambda q: q["sx"])
                near = sorted(points, key=lambda q: (q["sx"] - first["sx"]) ** 2
                              + (q["sy"] - first["sy"]) ** 2)[:24]
                x0, y0 = min(q["sx"] for q in near) - 4, min(q["sy"] for q in near) - 4
                x1, y1 = max(q["sx"] for q in near) + 4, max(q["sy"] for q in near) + 4
                rect = page.locator("#scatter").bounding_box()
                assert rect is not None
                page.mouse.move(rect["x"] + x0, rect["y"] + y0)
                page.mouse.down()
                page.mouse.move(rect["x"] + x1, rect["y"] + y1, steps=8)
                page.mouse.up()
                page.wait_for_timeout(2000)  # thumbnails
                selected = page.evaluate("() => window.labelling.state.selected.size")
                SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return {"chips_in_map": len(points), "brushed": int(selected)}


def main() -> None:
    """Build the view, take the picture, record how."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="SAMPLEHUB_HOME to build in")
    args = ap.parse_args()
    require_data("sentinel2_oscd")
    if not CHROMIUM.exists():
        sys.exit("needs Debian's chromium at /usr/bin/chromium")
    os.environ["SAMPLEHUB_HOME"] = str(args.home.resolve())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    stages = build_view(args.home.resolve())
    page = screenshot(args.home.resolve())
    result = {
        "claim": "the labelling page over a view built by the build_labelling_view job",
        "data": "real: OSCD Sentinel-2, ten scenes, 551 chips of 100 px (oscd_tiles)",
        "config": "conf/labelling/default.yaml", "stages": stages, "page": page,
        "screenshot": str(SCREENSHOT.relative_to(REPO)),
        "seconds": round(time.perf_counter() - started, 1), "machine": machine(),
    }
    write_json("labelling_page.json", result)
    print(json.dumps({k: result[k] for k in ("page", "seconds")}))


if __name__ == "__main__":
    main()
