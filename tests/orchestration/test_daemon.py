"""A dropped folder becomes queryable by itself, under the real webserver and daemon.

``dg dev`` runs as a subprocess on loopback over a temporary ``DAGSTER_HOME`` and
``SAMPLEHUB_HOME`` that already hold two real datasets (EuroSAT chips and the BigEarthNet
examples), materialized through the automation in-process. The test copies real UC Merced
images under ``watch_root`` and waits, with a bound, until the three-step query returns
them; nothing but the shipped sensors and automation conditions launches a run. Then it
launches a partition backfill of ``image_features`` through GraphQL, as the UI does.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from automation_loop import AutomationLoop, ingest
from dagster import AssetKey, DagsterInstance

from assets.resources import SampleHubResource
from orchestration.server import DevServer, busy, materialization_counts, poll
from samplehub.errors import UnknownLabelError
from samplehub.instance import write_instance_yaml
from samplehub.repository import Repository
from samplehub.retrieval.query import run_query
from samplehub.retrieval.types import QuerySpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"
pytestmark = pytest.mark.integration

# Small but real: a 64 px backbone input keeps features at a few seconds per dataset.
CONFIG = """
model:
  resolution: 64
hashing:
  retrain_min_new_samples: 1000000
"""


def exact_hits(label: str, dataset: str) -> int | None:
    """How many exact hits of ``label`` come from ``dataset``; None while unknown or zero."""
    try:
        result = run_query(Repository.open(), QuerySpec(labels=(label,),
                                                        include_supplementary=False))
    except UnknownLabelError:
        return None
    return sum(hit.dataset == dataset for hit in result.exact) or None


def runs_of(instance: DagsterInstance, counts: dict, after: float) -> str:
    """Which runs, with which tags and selection, materialized what was counted twice."""
    lines = []
    for (asset, partition), n in counts.items():
        if n < 2:
            continue
        for record in instance.fetch_materializations(AssetKey(asset), limit=100).records:
            if record.timestamp > after and (record.partition_key or "") == partition:
                run = instance.get_run_by_id(record.run_id)
                assert run is not None
                selection = sorted(k.to_user_string() for k in run.asset_selection or ())
                lines.append(f"{asset}[{partition}] by {run.job_name} {run.run_id[:8]} "
                             f"selection={selection} tags={dict(run.tags)}")
    return "\n".join(lines)


@pytest.fixture
def deployment(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """conf/ with two real sources and a watched folder; both datasets materialized."""
    home, watch_root, conf = tmp_path / "home", tmp_path / "incoming", tmp_path / "conf"
    watch_root.mkdir()
    shutil.copytree(Path(__file__).resolve().parents[2] / "conf", conf)
    shutil.rmtree(conf / "sources")
    (conf / "sources").mkdir()
    (conf / "sources" / "eurosat_mini.yaml").write_text(
        f"name: eurosat_mini\nuri: {FIXTURES / 'eurosat_mini'}\nkind: folder_tree\n")
    (conf / "sources" / "bigearthnet_s2.yaml").write_text(
        "name: bigearthnet_s2\n"
        f"uri: {shared_data / 'bigearthnet_examples' / 'BigEarthNet-S2-Example'}\n"
        "kind: bigearthnet\n")
    config = conf / "config.yaml"
    text = config.read_text().replace("watch_root: null", f"watch_root: {watch_root}")
    config.write_text(text + CONFIG)
    monkeypatch.setenv("SAMPLEHUB_CONF", str(conf))
    monkeypatch.setenv("SAMPLEHUB_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    write_instance_yaml(Repository.open().config, home / "dagster")
    with DagsterInstance.get() as instance:
        loop = AutomationLoop(instance, SampleHubResource())
        loop.tick()
        ingest(loop, "eurosat_mini", "bigearthnet_s2")
        loop.settle()
        assert loop.materialized[("ivfpq_index", None)] == 1 and not loop.failed
    return home, watch_root


def test_a_dropped_folder_becomes_queryable_and_backfills_like_the_ui(
    deployment: tuple[Path, Path],
) -> None:
    home, watch_root = deployment
    server = DevServer(home / "dagster", env={"SAMPLEHUB_HOME": str(home)})
    with DagsterInstance.get() as instance, server:
        settled = time.time()
        shutil.copytree(FIXTURES / "ucmerced_mini", watch_root / "ucm_drop")
        assert poll("the dropped freeway images as exact hits",
                    lambda: exact_hits("freeway", "ucm_drop"), timeout=480) == 10

        def supplementary_from_drop() -> list[str] | None:
            result = run_query(Repository.open(), QuerySpec(labels=("Highway",), k=50))
            found = [h.relpath for h in result.supplementary if h.dataset == "ucm_drop"]
            return found or None

        assert poll("supplementary hits from the dropped dataset for EuroSAT's Highway",
                    supplementary_from_drop, timeout=240)
        # Settled means the last aggregate ran too: "no run queued or in progress" alone
        # holds in the moment between two automation ticks, before label_prototypes
        # (which follows label_graph) is requested.
        poll("the automation to settle", lambda: None if busy(instance) or (
            "label_prototypes", "") not in materialization_counts(instance, after=settled)
            else True, 240)
        after_drop = materialization_counts(instance, after=settled)
        assert after_drop[("samples", "ucm_drop")] == 1
        assert after_drop[("image_features", "ucm_drop")] == 1
        assert after_drop[("label_graph", "")] == 1 and after_drop[("ivfpq_index", "")] == 1
        assert after_drop[("label_prototypes", "")] == 1
        assert max(after_drop.values()) == 1, (
            f"materialized twice: {after_drop}\n{runs_of(instance, after_drop, settled)}")
        assert not any(dataset in {"eurosat_mini", "bigearthnet_s2"}
                       for _, dataset in after_drop), "old partitions were left alone"

        partitions = ["bigearthnet_s2", "eurosat_mini", "ucm_drop"]
        backfill_id = server.launch_asset_backfill(["image_features"], partitions)
        before_backfill = time.time()
        poll("the backfill to finish", lambda: True if (
            instance.get_backfill(backfill_id).status.value.startswith("COMPLETED")
            and not busy(instance)) else None, timeout=300)
        backfilled = materialization_counts(instance, after=before_backfill)
        assert {p for (asset, p) in backfilled if asset == "image_features"} == set(partitions)
        assert all(n == 1 for n in backfilled.values()), backfilled
        time.sleep(25)  # two automation ticks: unchanged features re-index nothing
        assert set(materialization_counts(instance, after=before_backfill)) == set(backfilled)
    assert server.process is not None and server.process.poll() is not None
