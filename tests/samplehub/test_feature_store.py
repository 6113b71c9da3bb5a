"""Image features on the fixture datasets: cached per (sample, model version), multispectral
harmonized, and the registered scene model taking over the model version."""

from pathlib import Path

import numpy as np
import pytest

from ml.features import SceneTrainConfig
from samplehub.config import load_config
from samplehub.feature_store import (
    compute_features,
    count_non_finite,
    harmonize,
    load_features,
    train_registered_scene_model,
)
from samplehub.models.feature_model import FeatureModel, load_feature_model, model_version
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"
OVERRIDES = ["model.resolution=64", "model.dim=64", "executor.batch_size=8"]


@pytest.fixture(scope="module")
def imagenet_model(tmp_path_factory: pytest.TempPathFactory) -> FeatureModel:
    """The ImageNet encoder at 64 px (loaded once; no MLflow store in its home)."""
    home = tmp_path_factory.mktemp("model_home")
    return load_feature_model(load_config([f"home={home}", *OVERRIDES]))


@pytest.fixture
def repo(home: Path) -> Repository:
    repo = Repository(load_config(OVERRIDES))
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    return repo


def test_second_run_computes_nothing(repo: Repository, imagenet_model: FeatureModel) -> None:
    assert imagenet_model.version == "imagenet-tf_efficientnet_lite0-64-r64"
    assert model_version(repo.config) == imagenet_model.version

    first = compute_features(repo, "tree", imagenet_model)
    assert (first.total, first.computed, first.cached) == (12, 12, 0)
    second = compute_features(repo, "tree")  # no model given: nothing to do, none loaded
    assert (second.computed, second.cached) == (0, 12)

    ids, xb = load_features(repo.catalog, imagenet_model.version)
    assert np.array_equal(ids, np.sort(repo.catalog.sample_ids("tree")))
    assert xb.shape == (12, 64) and xb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1.0, atol=1e-5)
    assert count_non_finite(repo.catalog, imagenet_model.version) == (12, 0)
    assert load_features(repo.catalog, "another-version")[0].size == 0
    assert load_features(repo.catalog, imagenet_model.version, ["other"])[0].size == 0


def test_each_vector_belongs_to_its_sample(repo: Repository, imagenet_model: FeatureModel) -> None:
    compute_features(repo, "tree", imagenet_model)
    ids, xb = load_features(repo.catalog, imagenet_model.version)
    pixels = np.stack([repo.image(int(i))[1] for i in ids])  # one by one, in id order
    np.testing.assert_allclose(imagenet_model.encode(pixels), xb, atol=2e-2)


def test_multispectral_samples_are_harmonized(
    repo: Repository, imagenet_model: FeatureModel
) -> None:
    repo.ingest(SourceSpec(name="ben", uri=str(FIXTURES / "bigearthnet")))
    report = compute_features(repo, "ben", imagenet_model)
    assert report.computed == 2  # one Sentinel-2 (12 bands) and one Sentinel-1 (VV, VH) patch
    _, xb = load_features(repo.catalog, imagenet_model.version, ["ben"])
    assert xb.shape == (2, 64) and np.isfinite(xb).all()


def test_harmonize_passes_rgb_through_and_reduces_multispectral() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (2, 3, 8, 8), dtype=np.uint8)
    assert harmonize(rgb, ["red", "green", "blue"], None) is rgb
    ms = np.random.default_rng(0).integers(0, 4000, (2, 4, 8, 8), dtype=np.uint16)
    out = harmonize(ms, ["red", "green", "blue", "nir"], None)
    assert out.shape == (2, 3, 8, 8) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_registered_scene_model_becomes_the_model_version(home: Path) -> None:
    repo = Repository(load_config([*OVERRIDES, "model.train_dataset=ml"]))
    manifest = FIXTURES / "multilabel_manifest"
    repo.ingest(
        SourceSpec(
            name="ml",
            uri=str(manifest / "manifest.txt"),
            kind="multilabel_manifest",
            options={"images": str(manifest)},
        )
    )
    result = train_registered_scene_model(
        repo, train_config=SceneTrainConfig(dim=64, epochs=2, batch_size=4, val_fraction=0.0)
    )
    assert result.model_version == "1" and len(result.history) == 2
    assert model_version(repo.config) == "scene_model-v1-r64"
    report = compute_features(repo, "ml")
    assert report.model_version == "scene_model-v1-r64" and report.computed == 3
    assert (home / "mlflow.db").is_file() and (home / "mlartifacts").is_dir()
