"""Hashing assets in-process on the fixture datasets: both hash models trained and registered
(metadata: run id, mAP, promotion, alias), codes per dataset partition (cached on re-run),
the Hamming index over all partitions with its passing check."""

import dataclasses
from pathlib import Path

from asset_results import DATASETS, ingest_fixture_datasets, metadata
from dagster import instance_for_test, materialize

from assets.features import image_features
from assets.hashing import (
    dmch_model,
    duwh_model,
    hash_codes,
    hash_index,
    hash_index_holds_every_code,
)
from assets.metadata import comparison_metadata
from assets.resources import SampleHubResource
from samplehub.retrieval.comparison import ComparisonUpdate
from samplehub.retrieval.planner import IndexComparison, IndexQuality

OVERRIDES = ["model.resolution=64", "model.dim=64", "hashing.bits=16", "hashing.epochs=3",
             "hashing.dmch_dataset=tree", "hashing.duwh_dataset=tree"]


def test_models_codes_and_index_materialize(home: Path) -> None:
    resource = SampleHubResource(overrides=OVERRIDES)
    resources = {"samplehub": resource}
    with instance_for_test() as instance:
        ingest_fixture_datasets(resource, instance)
        for key in DATASETS:
            assert materialize([image_features], partition_key=key, resources=resources,
                               instance=instance).success
        models = materialize([dmch_model, duwh_model], resources=resources, instance=instance)
        assert models.success
        dmch = metadata(models, "dmch_model")
        assert (dmch["registered_model"], dmch["promoted"], dmch["alias"]) == (
            "dmch-16", "yes", "champion")
        assert dmch["run_id"] and 0.0 <= dmch["map"] <= 1.0 and dmch["champion_map"] == "none"
        assert metadata(models, "duwh_model")["registered_model"] == "duwh-16"

        for key, n in (("tree", 12), ("ben", 2)):
            codes = materialize([hash_codes], partition_key=key, resources=resources,
                                instance=instance)
            assert (metadata(codes, "hash_codes")["computed"], metadata(codes, "hash_codes")[
                "model"]) == (n, "dmch-16-v1")
        again = materialize([hash_codes], partition_key="tree", resources=resources,
                            instance=instance)
        assert metadata(again, "hash_codes")["cached"] == 12

        index = materialize([hash_index, hash_index_holds_every_code], resources=resources,
                            instance=instance)
        assert index.success
        meta = metadata(index, "hash_index")
        assert (meta["action"], meta["ntotal"], meta["kind"]) == ("built", 14, "flat")
        assert meta["bytes_per_sample"] == 44
        assert meta["index_comparison"].startswith("skipped: no IVF-PQ index")  # auto: IVF-PQ
        [check] = index.get_asset_check_evaluations()
        assert check.passed and check.metadata["indexed"].value == 14


def test_comparison_metadata_names_the_winner_and_its_numbers(tmp_path: Path) -> None:
    quality = IndexQuality(0.5, 0.9, 0.4, 0.8)
    measured = IndexComparison(
        hash=dataclasses.replace(quality, map_at_k=0.7, p50_ms=0.1), ivfpq=quality, k=100,
        probe=200, seed=0, feature_model="f-v1", ivfpq_ntotal=10, hash_model="dmch-64-v1",
        hash_ntotal=10, hash_kind="flat", measured_at="2026-01-01T00:00:00+00:00",
    )
    meta = comparison_metadata(ComparisonUpdate(measured, None, tmp_path / "comparison.json"))
    assert meta["index_comparison"] == "hash wins"
    assert (meta["hash_map@100"].value, meta["ivfpq_map@100"].value) == (0.7, 0.5)
    assert (meta["hash_p50_ms"].value, meta["ivfpq_p50_ms"].value) == (0.1, 0.4)
    skipped = comparison_metadata(ComparisonUpdate(None, "no IVF-PQ index", tmp_path))
    assert skipped == {"index_comparison": "skipped: no IVF-PQ index"}
