"""A dropped dataset becomes queryable by itself: seconds from the folder drop to the query.

Claim (DESIGN.md section 5: "a new folder or source file becomes queryable with no person
involved"): with the shipped sensors and automation conditions running under the real
Dagster daemon (``dg dev`` on loopback), UC Merced (2,100 real images, 21 classes) copied
under ``watch_root`` of a repository that already holds EuroSAT (27,000 real chips) is
returned by the three-step query within 120 s on 2 cores, with no asset partition
materialized twice for the same data.

Protocol:
1. A fresh home: EuroSAT ingested, encoded (224 px, the shipped model config), merged into
   the label graph and indexed in-process on a SQLite instance (untimed set-up).
2. ``dg dev`` starts over that instance (untimed); the run queue and the heavy-asset pool
   are the shipped ``infra/dagster.yaml`` limits (2 runs, 1 heavy step).
3. Clock starts; ``ucmerced/Images`` is copied to ``<watch_root>/ucmerced``.
4. ``seconds_to_exact``: the query ``golf course`` (a UC Merced-only class, 100 images)
   first returns all 100 as exact hits. ``seconds_to_queryable``: additionally the IVF-PQ
   index and the label prototypes hold the new samples, i.e. the whole three-step query
   (supplementary samples included) sees them. Polled every second.
5. The automation settles; every run since the drop is counted, with each asset
   partition's materializations (a count above one is a duplicate).

The only departure from the shipped configuration: ``hashing.retrain_min_new_samples`` is
raised so the hash-retraining sensor does not start training DMCH/DUWH during the
measurement (it would, after 27,000 new samples, and that is a separate claim).

Quality beside the speed: exact recall of the dropped class (hits / 100), the recall@k
check of the index built by the automation, and supplementary hits from UC Merced for
EuroSAT's ``Highway``. Baseline from the same run: the summed duration of the runs the
automation launched, i.e. the compute without the sensor/queue latency.

Writes ``bench/results/automation.json`` and ``docs/automation_runs.png`` (the runs page of
the Dagster UI in headless Chromium, when ``/usr/bin/chromium`` exists).

Run: ``python bench/automation.py [--workdir DIR]`` (``DIR`` keeps the EuroSAT set-up, about
20 min of features on 2 cores without bf16, for later runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, machine, require_data, write_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRun, RunRecord

from jobs.features import features_job, index_job
from jobs.ingest import ingest_job
from jobs.labels import label_graph_job
from orchestration.demo import run_job
from orchestration.server import DevServer, busy, materialization_counts, poll
from samplehub.errors import UnknownLabelError
from samplehub.instance import write_instance_yaml
from samplehub.repository import Repository
from samplehub.retrieval.query import run_query
from samplehub.retrieval.types import QuerySpec

BAR_SECONDS = 120.0
DROPPED, QUERY, EXPECTED = "ucmerced", "golf course", 100
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "automation_runs.png"


def exact_from_drop() -> int:
    """Exact hits of the query label from the dropped dataset (0 while it is unknown)."""
    try:
        result = run_query(Repository.open(), QuerySpec(labels=(QUERY,),
                                                        include_supplementary=False))
    except UnknownLabelError:
        return 0
    return sum(hit.dataset == DROPPED for hit in result.exact)


def updated_since(instance: DagsterInstance, asset: str, since: float) -> bool:
    """Whether ``asset`` has a materialization stored after ``since``."""
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    return bool(records) and records[0].timestamp > since


def screenshot(url: str) -> str | None:
    """The UI's runs page as a PNG under docs/; None without Chromium."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/runs", wait_until="networkidle")
            page.wait_for_timeout(3000)
            skip = page.get_by_role("button", name="Skip")  # the first visit's community dialog
            if skip.count():
                skip.first.click()
                page.mouse.move(0, 0)  # no hover card over the runs table
                page.wait_for_timeout(1000)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    return str(SCREENSHOT.relative_to(REPO))


def prepare(work: Path, data: Path) -> Path:
    """conf/, an empty watch_root and a home holding EuroSAT, under ``work``; returns home.

    The home is set up once and kept as ``home.pristine``; each later run starts from a copy
    at the same path (so every absolute path stored in it still holds).
    """
    home, watch_root, conf = work / "home", work / "incoming", work / "conf"
    shutil.rmtree(watch_root, ignore_errors=True)
    watch_root.mkdir(parents=True)
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(REPO / "conf", conf)
    for source in (conf / "sources").glob("*.yaml"):
        if source.stem != "eurosat":
            source.unlink()
    config = conf / "config.yaml"
    config.write_text(
        config.read_text().replace("watch_root: null", f"watch_root: {watch_root}")
        + "hashing:\n  retrain_min_new_samples: 100000000\n"
    )
    os.environ.update(SAMPLEHUB_CONF=str(conf), SAMPLEHUB_HOME=str(home),
                      SAMPLEHUB_DATA=str(data), DAGSTER_HOME=str(home / "dagster"))
    pristine = work / "home.pristine"
    if pristine.is_dir():
        print(f"set-up: EuroSAT from {pristine}")
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(pristine, home, symlinks=True)
        return home
    # An interrupted set-up resumes: ingest adds nothing, features only what is missing.
    write_instance_yaml(Repository.open().config, home / "dagster")
    with DagsterInstance.get() as instance:
        print("set-up: EuroSAT ingest, features, label graph, index (in-process) ...")
        if not instance.has_dynamic_partition("dataset", "eurosat"):
            instance.add_dynamic_partitions("dataset", ["eurosat"])
        for job in (ingest_job, features_job):
            assert run_job(instance, job.name, "eurosat").success
        for job in (label_graph_job, index_job):
            assert run_job(instance, job.name).success
    shutil.copytree(home, pristine, symlinks=True)
    return home


def main() -> None:
    """Set up EuroSAT, start the daemon, drop UC Merced, measure, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the EuroSAT set-up here for re-runs")
    parser.add_argument("--setup-only", action="store_true", help="prepare --workdir and stop")
    args = parser.parse_args()
    data = require_data("eurosat_rgb", "ucmerced", "osm_semantic_network")
    with tempfile.TemporaryDirectory(prefix="samplehub-automation-") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        home = prepare(work, data)
        if args.setup_only:
            return
        watch_root = work / "incoming"
        with DagsterInstance.get() as instance:
            with DevServer(home / "dagster") as server:
                time.sleep(15)  # the daemon's first ticks record the state it starts from
                print(f"dg dev on {server.url}; dropping {DROPPED} under watch_root ...")
                started = time.time()
                clock = time.perf_counter()
                shutil.copytree(data / "ucmerced" / "Images", watch_root / DROPPED)
                copied_s = time.perf_counter() - clock
                poll(f"{EXPECTED} exact hits", lambda: exact_from_drop() >= EXPECTED or None,
                     timeout=1800, every=1.0)
                to_exact = time.perf_counter() - clock
                poll("the index and prototypes", lambda: all(
                    updated_since(instance, a, started)
                    for a in ("ivfpq_index", "label_prototypes")) or None,
                     timeout=1800, every=1.0)
                to_queryable = time.perf_counter() - clock
                poll("the automation to settle", lambda: None if busy(instance) else True,
                     timeout=1800, every=2.0)
                time.sleep(30)  # three more automation ticks: nothing else may start
                poll("the automation to settle", lambda: None if busy(instance) else True,
                     timeout=1800, every=2.0)
                image = screenshot(server.url)
            runs = [r for r in instance.get_run_records()
                    if r.create_timestamp.timestamp() > started]
            counts = materialization_counts(instance, after=started)
            compute_s = sum(
                (r.end_time or 0) - (r.start_time or 0) for r in runs if r.end_time
            )
            repo = Repository.open()
            exact = exact_from_drop()
            highway = run_query(repo, QuerySpec(labels=("Highway",), k=100))
            recall = latest_check_value(instance, "ivfpq_index", "recall_at_k_above_bar")
    result = {
        "claim": "a folder dropped under watch_root is queryable with no person involved",
        "data": "real: EuroSAT RGB 27,000 already in the repository; UC Merced 2,100 dropped",
        "clients": 1,
        "seconds_to_exact": round(to_exact, 1),
        "seconds_to_queryable": round(to_queryable, 1),
        "copy_seconds": round(copied_s, 1),
        "bar_seconds": BAR_SECONDS,
        "passed": to_queryable <= BAR_SECONDS,
        "runs_launched": len(runs),
        "runs": sorted(run_line(r.dagster_run) for r in runs),
        "timeline": timeline(runs, started),
        "duplicate_materializations": sum(n - 1 for n in counts.values() if n > 1),
        "materializations": {f"{a}[{p}]" if p else a: n for (a, p), n in sorted(counts.items())},
        "baseline_run_compute_seconds": round(compute_s, 1),
        "quality": {
            "exact_recall_golf_course": exact / EXPECTED,
            "ivfpq_recall_check": recall,
            "highway_supplementary_from_ucmerced": sum(
                h.dataset == DROPPED for h in highway.supplementary),
        },
        "screenshot": image,
        "machine": machine(),
        "commit": commit(),
    }
    write_json("automation.json", result)
    print({k: result[k] for k in ("seconds_to_exact", "seconds_to_queryable", "runs_launched",
                                  "duplicate_materializations")})


def commit() -> str:
    """The measured checkout's commit (and ``+dirty`` with uncommitted changes)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(  # this script's own outputs do not make the checkout dirty
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
         ":!bench/results", ":!docs"], cwd=REPO, capture_output=True, text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def run_line(run: DagsterRun) -> str:
    """``job[partition] STATUS`` of one run."""
    partition = run.tags.get("dagster/partition", "")
    return f"{run.job_name}[{partition}] {run.status.value}"


def timeline(runs: list[RunRecord], started: float) -> list[dict[str, object]]:
    """Each run's assets, and its queue, start and end in seconds from the drop.

    ``queued_s`` to ``started_s`` is the run queue and the process start; the gap between
    one run's end and the next one's creation is the sensor and automation tick latency.
    """
    def since(t: float | None) -> float | None:
        return None if t is None else round(t - started, 1)

    rows = []
    for r in sorted(runs, key=lambda r: r.create_timestamp):
        run = r.dagster_run
        assets = sorted(k.to_user_string() for k in run.asset_selection or ())
        rows.append({
            "run": run_line(run), "assets": assets,
            "created_s": since(r.create_timestamp.timestamp()),
            "started_s": since(r.start_time), "ended_s": since(r.end_time),
        })
    return rows


def latest_check_value(instance: DagsterInstance, asset: str, check: str) -> float | None:
    """The ``recall`` metadata of the latest evaluation of an asset check."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), check), limit=1
    )
    if not records or records[0].evaluation is None:
        return None
    value = records[0].evaluation.metadata.get("recall")
    return None if value is None else float(value.value)


if __name__ == "__main__":
    main()
