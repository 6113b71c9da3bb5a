"""Labelling assets in-process on one real OSCD scene (saclay_e, 36 chips of 100 px) with the
tiny labelling config: every stage materializes for the configured partition, the U-Net and
GNN are registered in MLflow under the alias, the labelling view is written, and a partition
outside ``labelling.datasets`` is skipped."""

from pathlib import Path

import numpy as np
import pandas as pd
from asset_results import metadata
from dagster import instance_for_test, materialize

from assets.labelling import chip_embeddings, fcm_targets, gnn_model, segment_graphs, unet_model
from assets.partitions import dataset_partitions
from assets.resources import SampleHubResource
from samplehub.labelling.pipeline import EMBEDDINGS_FILE, GraphSet, work_dir
from samplehub.labelling.tracking import champion
from samplehub.sources import SourceSpec

STAGES = [fcm_targets, unet_model, segment_graphs, gnn_model, chip_embeddings]


def test_labelling_stages_materialize_on_a_real_scene(home: Path, shared_data: Path) -> None:
    resource = SampleHubResource(overrides=["labelling=tiny", "labelling.datasets=[saclay]"])
    repo = resource.repository()
    scene = shared_data / "sentinel2_oscd" / "saclay_e"
    report = repo.ingest(SourceSpec(name="saclay", uri=str(scene), kind="tiles"))
    assert report.added == 36
    rows = repo.catalog.samples("saclay", columns=["relpath", "split", "footprint"])
    assert (rows["split"] == "test").sum() == 9 and rows["footprint"].notna().all()
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, ["saclay", "other"])
        run = materialize(STAGES, partition_key="saclay", resources={"samplehub": resource},
                          instance=instance)
        assert run.success
        assert metadata(run, "fcm_targets")["clusters"] == 8
        unet = metadata(run, "unet_model")
        assert unet["model_version"] == "labelling-unet-saclay-v1" and unet["device"] == "cpu"
        graphs = metadata(run, "segment_graphs")
        assert graphs["chips"] == 36 and graphs["feature_dim"] == 8  # 64 x width 0.125
        emb = metadata(run, "chip_embeddings")
        assert emb["chips"] == 36 and emb["assignments"] <= emb["pairs"] == 36 * 35 // 2
        skipped = materialize([fcm_targets], partition_key="other",
                              resources={"samplehub": resource}, instance=instance)
        assert metadata(skipped, "fcm_targets") == {"skipped": "not in labelling.datasets"}
    assert champion(repo.config, "labelling-gnn-saclay").version == "1"
    gset = GraphSet.load(work_dir(repo, "saclay") / "graphs.npz")
    assert [g.labels.shape for g in gset.graphs] == [(100, 100)] * 36
    assert all(g.target.shape[1] == 8 and np.allclose(g.target.sum(1), 1, atol=1e-4)
               for g in gset.graphs)
    stored = np.load(work_dir(repo, "saclay") / EMBEDDINGS_FILE)
    assert stored["chip_xy"].shape == (36, 2) and np.isfinite(stored["segment_xy"]).all()
    view = home / "labelling" / "saclay"
    current = (view / "current").read_text().strip()
    chips = pd.read_parquet(view / current / "chips.parquet")
    assert set(chips["sample_id"]) == {str(i) for i in gset.sample_ids}
