"""The repository as the one entry point: its label-graph store and the models it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from samplehub.catalog import DatasetInfo
from samplehub.config import load_config
from samplehub.errors import IndexNotTrainedError
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.models.feature_model import FeatureModel, feature_model
from samplehub.repository import ModelCache, Repository
from samplehub.sources import SourceSpec


def test_labels_is_the_configured_store_of_the_home(home: Path) -> None:
    repo = Repository(load_config())
    assert isinstance(repo.labels, EmbeddedLabelGraphStore)
    assert repo.labels is repo.labels
    assert repo.labels.path.is_relative_to(home.resolve())
    assert repo.graph_settings.backend == "embedded"


def test_model_cache_loads_once_and_keeps_no_failure() -> None:
    cache, calls = ModelCache(), []

    def load() -> str:
        calls.append(1)
        return "model"

    assert cache.get("features", "v1", load) == cache.get("features", "v1", load) == "model"
    assert len(calls) == 1

    def broken() -> str:
        raise RuntimeError("registry down")

    with pytest.raises(RuntimeError):
        cache.get("features", "v2", broken)
    assert cache.get("features", "v2", load) == "model" and len(calls) == 2


def test_feature_model_is_kept_per_repository(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[FeatureModel] = []

    def fake_load(config: object) -> FeatureModel:
        model = FeatureModel(encoder=None, version="v1", settings=None)  # type: ignore[arg-type]
        loaded.append(model)
        return model

    monkeypatch.setattr("samplehub.models.feature_model.load_feature_model", fake_load)
    repo, other = Repository(load_config()), Repository(load_config())
    assert feature_model(repo, "v1") is feature_model(repo, "v1") is loaded[0]
    assert feature_model(other, "v1") is loaded[1]  # another repository loads its own
    with pytest.raises(IndexNotTrainedError, match="index holds v0"):
        feature_model(repo, "v0")


def test_an_ad_hoc_dataset_is_a_source_from_its_registry_row(home: Path) -> None:
    repo = Repository(load_config())
    repo.catalog.register_dataset(DatasetInfo(
        dataset="adhoc", source_uri="/data/adhoc", kind="folder_tree", platform="drone",
        licence="CC-BY-4.0", citation="Someone 2024", n_samples=3,
    ))
    assert repo.source_spec("adhoc") == SourceSpec(
        name="adhoc", uri="/data/adhoc", kind="folder_tree", platform="drone",
        licence="CC-BY-4.0", citation="Someone 2024",
    )
