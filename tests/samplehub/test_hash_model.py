"""Deep-hash models of a repository: a tiny DMCH retraining run is visible in MLflow (its
metrics, artifact and the registered alias), promotion only on improvement, codes cached per
model version, the Hamming index saved and reloaded, the retraining threshold."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from hash_fixture import tiny_hash_repository

from samplehub.errors import IndexNotTrainedError, ModelRegistryError
from samplehub.index.hamming import (
    compute_hash_codes,
    load_hash_codes,
    load_hash_index,
    update_hash_index,
)
from samplehub.models.hash_model import (
    champion,
    load_hash_model,
    retraining_due,
    train_hash_model,
    validation_split,
)
from samplehub.repository import Repository


@pytest.fixture
def repo(home: Path) -> Repository:
    """The tiny hashing repository of ``tests/hash_fixture.py``."""
    return tiny_hash_repository()


def test_retraining_run_shows_metrics_artifact_and_alias_in_mlflow(repo: Repository) -> None:
    assert retraining_due(repo).due  # 12 samples >= 10, no champion yet
    first = train_hash_model(repo, "dmch")
    assert (first.model_name, first.version, first.promoted) == ("dmch-16", "1", True)
    uri = f"sqlite:///{repo.config.home_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(first.run_id)
    assert {"val_map", "loss", "map", "tri", "cat", "bal"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(first.run_id, "loss")] == [1, 2, 3]
    assert run.data.params["n_bits"] == "16" and run.data.tags["dataset"] == "tree"
    assert "retrieval_metrics.json" in {a.path for a in client.list_artifacts(first.run_id)}
    assert str(client.get_model_version_by_alias("dmch-16", "champion").version) == "1"
    assert str(repo.config.home_path / "mlartifacts") in run.info.artifact_uri

    second = train_hash_model(repo, "dmch")  # same data and seed: not strictly better
    assert (second.version, second.promoted, second.champion_map) == ("2", False, first.val_map)
    assert champion(repo.config).version == "1"  # type: ignore[union-attr]
    assert not retraining_due(repo).due  # nothing new since the champion's 12 samples


def test_codes_are_cached_per_model_version_and_the_index_reloads(repo: Repository) -> None:
    with pytest.raises(IndexNotTrainedError, match="dmch_model"):
        load_hash_model(repo.config)
    train_hash_model(repo, "dmch")
    model = load_hash_model(repo.config)
    kept = load_hash_model(repo.config, models=repo.models)  # weights kept by the repository
    assert load_hash_model(repo.config, models=repo.models) is kept is not model
    first = compute_hash_codes(repo, "tree")
    assert (first.model, first.computed, first.cached) == ("dmch-16-v1", 12, 0)
    assert compute_hash_codes(repo, "tree").computed == 0
    ids, packed, values = load_hash_codes(repo.catalog, model.model_version)
    assert packed.shape == (12, 2) and values.shape == (12, 16)
    assert ((values > 0) & (values < 1)).all()  # DMCH's sigmoid layer
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1), (values >= 0.5).astype(np.uint8))
    update = update_hash_index(repo)
    assert (update.action, update.ntotal, update.kind) == ("built", 12, "flat")
    assert update.bytes_per_sample == 2 + 8 + 2 + 32
    assert update_hash_index(repo).action == "unchanged"
    index = load_hash_index(repo.config, model.model_version)
    codes = np.unpackbits(packed, axis=1)
    D, I = index.search_rerank(codes[:3], values[:3], 1, 12)
    np.testing.assert_array_equal(I[:, 0], ids[:3])  # each sample is its own nearest code
    np.testing.assert_allclose(D[:, 0], 0.0, atol=1e-3)  # Eq. 7: no differing bit, no gap


def test_duwh_trains_and_a_dataset_without_features_is_refused(repo: Repository) -> None:
    run = train_hash_model(repo, "duwh")
    assert run.model_name == "duwh-16" and run.promoted and 0.0 <= run.val_map <= 1.0
    with pytest.raises(IndexNotTrainedError, match=r"image_features\[nowhere\]"):
        train_hash_model(repo, "dmch", dataset="nowhere")


def test_validation_split_is_per_class_and_capped() -> None:
    y = np.repeat([0, 1, 2], [10, 5, 1])
    q, b = validation_split(y, 0.4, 3)
    assert np.bincount(y[q], minlength=3).tolist() == [3, 2, 0]
    assert not set(q) & set(b) and len(q) + len(b) == 16


def test_a_broken_registry_stops_the_promotion(repo: Repository) -> None:
    import sqlite3

    first = train_hash_model(repo, "dmch")
    db = repo.config.home_path / "mlflow.db"
    with sqlite3.connect(db) as connection:  # the registry fails to answer, the runs are fine
        connection.execute("drop table registered_model_aliases")
    with pytest.raises(ModelRegistryError, match="neither registered nor promoted") as error:
        train_hash_model(repo, "dmch")
    assert isinstance(error.value, RuntimeError) and "dmch-16@champion" in str(error.value)
    with sqlite3.connect(db) as connection:
        versions = connection.execute("select version from model_versions").fetchall()
    assert versions == [(int(first.version),)]


def test_catalog_features_class_by_unified_label_one_row_per_image(repo: Repository) -> None:
    from hash_fixture import FIXTURES

    from samplehub.feature_store import feature_table
    from samplehub.labels.graph import LAND_COVER, MAPS_TO, SCENE, LabelGraph
    from samplehub.models.feature_model import model_version
    from samplehub.models.hash_model import EVERY_DATASET, dataset_features
    from samplehub.sources import SourceSpec

    version = model_version(repo.config)
    for name, folder in (("mini", "eurosat_mini"), ("copy", "folder_tree")):
        repo.ingest(SourceSpec(name=name, uri=str(FIXTURES / folder)))
        ids = repo.catalog.samples(name, columns=["sample_id"])["sample_id"].to_numpy()
        xb = np.random.default_rng(1).standard_normal((len(ids), 32)).astype(np.float32)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        repo.catalog.append("features", feature_table(ids, name, version, xb))
    graph = LabelGraph()
    graph.add_label("forest", "forest", "base")
    copy = [f"copy/{name}" for name in ("forest", "river", "farmland")]
    for label_id, kind in (("tree/forest", SCENE), ("mini/Forest", SCENE),
                           *((c, LAND_COVER) for c in copy)):
        graph.add_label(label_id, label_id.split("/")[1], "dataset",
                        dataset=label_id.split("/")[0], kind=kind)
        graph.add_edge(label_id, "forest", MAPS_TO, score=1.0)
    repo.labels.commit(graph, "test graph")

    data = dataset_features(repo, EVERY_DATASET)
    tree = repo.catalog.samples("tree", columns=["sample_id"])["sample_id"].to_numpy()
    mini = repo.catalog.samples("mini", columns=["sample_id", "labels"])
    # the copies of tree's images count once, as tree's rows (the ones with a scene class)
    assert set(data.ids) == set(tree) | set(mini["sample_id"])
    names = {int(i): data.classes[c] for i, c in zip(data.ids, data.y, strict=True)}
    forests = {int(i) for i, ls in zip(mini["sample_id"], mini["labels"], strict=True)
               if ls[0] == "Forest"}
    assert {i for i, n in names.items() if n == "forest"} == forests | set(
        repo.catalog.samples("tree", label="forest", columns=["sample_id"])["sample_id"])
    # labels the graph does not hold are classes of their own until the next merge
    assert {"tree/river", "tree/farmland", "mini/River", "mini/Highway"} < set(data.classes)
    assert (data.y >= 0).all()
