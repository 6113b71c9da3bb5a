"""Declarative automation in-process: the conditions of ``assets/automation.py`` evaluated
tick by tick against a real instance, each requested run executed, until the graph settles.

The daemon test (``test_daemon.py``) shows the same with queued runs in flight; here every
request is executed at once, which is what makes the counts exact.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from automation_loop import AutomationLoop, ingest
from dagster import AssetKey, AssetSelection, instance_for_test

from assets.resources import SampleHubResource
from samplehub.repository import Repository

FIXTURES = Path(__file__).resolve().parents[1] / "data"
OVERRIDES = ["model.resolution=64", "model.dim=64", "retrieval.pq_m=8"]


@pytest.fixture
def conf(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A conf/ whose sources are two fixture datasets and a folder of corrupt images."""
    conf = tmp_path / "conf"
    shutil.copytree(Path(__file__).resolve().parents[2] / "conf", conf)
    shutil.rmtree(conf / "sources")
    (conf / "sources").mkdir()
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "folder_tree", tree)
    broken = tmp_path / "broken" / "rubble"
    broken.mkdir(parents=True)
    for i in range(3):
        (broken / f"chip{i}.jpg").write_bytes(b"not a jpeg " * 10)
    for name, uri in (("tree", tree), ("ben", FIXTURES / "bigearthnet"),
                      ("broken", broken.parent)):
        (conf / "sources" / f"{name}.yaml").write_text(f"name: {name}\nuri: {uri}\n")
    monkeypatch.setenv("SAMPLEHUB_CONF", str(conf))
    return conf


def test_a_batch_of_datasets_flows_to_one_graph_and_one_index(
    conf: Path, shared_data: Path
) -> None:
    """Needs ``shared_data`` for the OSM network the label graph embeds labels with."""
    with instance_for_test() as instance:
        loop = AutomationLoop(instance, SampleHubResource(overrides=OVERRIDES))
        assert not loop.tick(), "nothing to do before any dataset"
        ingest(loop, "tree", "ben", "broken")
        assert loop.failed == [("samples", "broken")]
        loop.settle()
        first = set(loop.ticks[1])
        assert {("image_features", "tree"), ("image_features", "ben")} <= first, loop.ticks
        # The label trees came with the ingest runs, so the graph may go now; the index
        # and the prototypes wait for the features being computed in this very tick.
        assert {p[0] for p in first if p[1] is None} <= {"label_graph", "label_embeddings"}
        assert loop.materialized[("label_graph", None)] == 1
        assert loop.materialized[("ivfpq_index", None)] == 1
        assert loop.materialized[("label_prototypes", None)] == 1
        assert max(loop.materialized.values()) == 1, loop.materialized
        assert not any(p[1] == "broken" for p in loop.materialized), "failed partition stays"
        assert loop.failed == [("samples", "broken")]
        assert not any(key[0].startswith("hash") for key in loop.materialized), "no champion"


def test_rescan_updates_features_and_index_for_just_the_new_files(
    conf: Path, tmp_path: Path, shared_data: Path
) -> None:
    with instance_for_test() as instance:
        loop = AutomationLoop(instance, SampleHubResource(overrides=OVERRIDES))
        (conf / "sources" / "ben.yaml").unlink()
        (conf / "sources" / "broken.yaml").unlink()
        assert not loop.tick()
        ingest(loop, "tree")
        for _ in range(3):
            loop.tick()
        assert loop.materialized[("image_features", "tree")] == 1
        assert loop.materialized[("ivfpq_index", None)] == 1
        before = dict(loop.materialized)

        ingest(loop, "tree")  # a rescan with nothing new: no data version moves
        assert not loop.tick()

        river = tmp_path / "tree" / "water" / "river"
        for i in (0, 1):
            shutil.copy(river / f"river0{i}.jpg", river / f"river1{i}.jpg")
        ingest(loop, "tree")
        loop.settle()
        grown = Counter(loop.materialized) - Counter(before)
        assert grown[("image_features", "tree")] == 1 and grown[("ivfpq_index", None)] == 1
        assert ("label_graph", None) not in grown, "same labels: the graph is left alone"
        records = instance.fetch_materializations(AssetKey("ivfpq_index"), limit=1).records
        meta = records[0].asset_materialization.metadata
        assert (meta["action"].value, meta["added"].value) == ("added", 2)
        features = instance.fetch_materializations(AssetKey("image_features"), limit=1)
        computed = features.records[0].asset_materialization.metadata["computed"].value
        assert computed == 2
        assert len(Repository.open(OVERRIDES).catalog.sample_ids("tree")) == 14


def test_a_tiles_dataset_flows_through_the_labelling_stages_once(
    conf: Path, shared_data: Path
) -> None:
    """A new ``tiles`` dataset listed in ``labelling.datasets`` becomes a labelling view by
    automation alone, each stage once, on one real OSCD scene (saclay_e, 36 chips)."""
    for name in ("tree", "ben", "broken"):
        (conf / "sources" / f"{name}.yaml").unlink()
    scene = shared_data / "sentinel2_oscd" / "saclay_e"
    (conf / "sources" / "saclay.yaml").write_text(
        f"name: saclay\nuri: {scene}\nkind: tiles\n")
    overrides = [*OVERRIDES, "labelling=tiny", "labelling.datasets=[saclay]"]
    stages = ["fcm_targets", "unet_model", "segment_graphs", "gnn_model", "chip_embeddings"]
    with instance_for_test() as instance:
        loop = AutomationLoop(instance, SampleHubResource(overrides=overrides),
                              selection=AssetSelection.groups("labelling"))
        ingest(loop, "saclay")
        loop.settle()
        assert not loop.failed, loop.failed
        assert {name: loop.materialized[(name, "saclay")] for name in stages} == dict.fromkeys(
            stages, 1), loop.ticks
        # The whole chain is requested on one tick and so runs as one run, in graph order.
        assert [tick for tick in loop.ticks if tick] == [
            sorted((name, "saclay") for name in stages)], loop.ticks
        assert not loop.tick(), "settled: nothing runs a second time"
    view = Repository.open(overrides).config.home_path / "labelling" / "saclay"
    assert (view / "current").is_file()
