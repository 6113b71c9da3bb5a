"""Feature assets in-process on the fixture datasets: one image_features partition at a
time, the index grown by the second partition, prototypes, and both checks passing."""

from pathlib import Path

from asset_results import ingest_fixture_datasets, metadata
from dagster import instance_for_test, materialize

from assets.features import (
    features_are_finite,
    image_features,
    ivfpq_index,
    label_prototypes,
    recall_at_k_above_bar,
)
from assets.resources import SampleHubResource

OVERRIDES = ["model.resolution=64", "model.dim=64", "retrieval.pq_m=8"]


def test_features_index_and_prototypes_materialize_with_passing_checks(home: Path) -> None:
    resource = SampleHubResource(overrides=OVERRIDES)
    resources = {"samplehub": resource}
    with instance_for_test() as instance:
        ingest_fixture_datasets(resource, instance)
        first = materialize([image_features, features_are_finite], partition_key="tree",
                            resources=resources, instance=instance)
        assert first.success
        features = metadata(first, "image_features")
        assert (features["computed"], features["cached"]) == (12, 0)
        assert features["model_version"] == "imagenet-tf_efficientnet_lite0-64-r64"
        assert all(c.passed for c in first.get_asset_check_evaluations())

        index_assets = [ivfpq_index, recall_at_k_above_bar]
        built = materialize(index_assets, resources=resources, instance=instance)
        assert built.success and metadata(built, "ivfpq_index")["action"] == "built"

        again = materialize([image_features], partition_key="tree", resources=resources,
                            instance=instance)
        assert metadata(again, "image_features")["computed"] == 0

        materialize([image_features], partition_key="ben", resources=resources, instance=instance)
        grown = materialize([*index_assets, label_prototypes], resources=resources,
                            instance=instance)
        assert grown.success
        index = metadata(grown, "ivfpq_index")
        assert (index["action"], index["added"], index["ntotal"]) == ("added", 2, 14)
        assert index["coarse_quantizer"] == "hnsw"
        [check] = grown.get_asset_check_evaluations()
        assert check.passed and check.metadata["recall"].value >= 0.9
        assert check.metadata["max_codes"].value == 12000
        assert metadata(grown, "label_prototypes")["labels"] == 5  # 3 tree + 2 ben labels
