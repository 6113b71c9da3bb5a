"""HIR assets in-process on the fixture datasets: TKANet and ESFormer trained, tracked and
registered (metadata: run id, validation mAP, promotion, supervision), land-cover statistics
per dataset partition (distributions over ESFormer's classes, cached on re-run)."""

from pathlib import Path

import numpy as np
from asset_results import FIXTURES, ingest_fixture_datasets, metadata
from dagster import instance_for_test, materialize

from assets.hir import esformer_model, landcover_stats, tkanet_model
from assets.resources import SampleHubResource
from samplehub.landcover import load_landcover_stats
from samplehub.models.hir_model import landcover_classes
from samplehub.sources import SourceSpec

OVERRIDES = ["hir.tkanet_dataset=tree", "hir.esformer_dataset=ml", "hir.resolution=64",
             "hir.tkanet_epochs=1", "hir.esformer_epochs=1", "hir.batch_size=4",
             "hir.max_train_samples=null", "hir.val_fraction=0.3"]


def test_hir_models_and_landcover_stats_materialize(home: Path) -> None:
    resource = SampleHubResource(overrides=OVERRIDES)
    resources = {"samplehub": resource}
    with instance_for_test() as instance:
        ingest_fixture_datasets(resource, instance)
        repo = resource.repository()
        manifest = FIXTURES / "multilabel_manifest"
        repo.ingest(SourceSpec(name="ml", uri=str(manifest / "manifest.txt"),
                               kind="multilabel_manifest", options={"images": str(manifest)}))
        instance.add_dynamic_partitions("dataset", ["ml"])
        models = materialize([tkanet_model, esformer_model], resources=resources,
                             instance=instance)
        assert models.success
        tk, es = metadata(models, "tkanet_model"), metadata(models, "esformer_model")
        assert (tk["registered_model"], tk["promoted"], tk["alias"]) == ("tkanet", "yes",
                                                                          "champion")
        assert es["registered_model"] == "esformer" and es["run_id"]
        assert 0.0 <= float(es["val_map"]) <= 1.0 and es["supervision"].startswith("weak")

        version, classes = landcover_classes(repo.config)
        assert version == "esformer-v1" and classes == ["buildings", "cars", "trees", "water"]
        for key, n in (("tree", 12), ("ben", 2)):
            run = materialize([landcover_stats], partition_key=key, resources=resources,
                              instance=instance)
            meta = metadata(run, "landcover_stats")
            assert (meta["computed"], meta["model"]) == (n, "esformer-v1")
            assert abs(sum(v for k, v in meta.items() if k.startswith("mean_")) - 1.0) < 1e-3
        again = materialize([landcover_stats], partition_key="tree", resources=resources,
                            instance=instance)
        assert metadata(again, "landcover_stats")["cached"] == 12
        _, P = load_landcover_stats(repo.catalog, version)
        assert P.shape == (14, 4) and np.allclose(P.sum(axis=1), 1.0, atol=1e-4)

