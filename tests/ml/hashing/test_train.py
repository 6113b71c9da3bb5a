"""Training loops on synthetic clusters and champion promotion in a real MLflow store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ml.hashing import train

if TYPE_CHECKING:
    from conftest import ClusterFactory, Clusters


def test_train_dmch_learns_clusters(cluster_factory: ClusterFactory) -> None:
    x, y = cluster_factory(n_classes=4, per_class=30, dim=24, seed=1)
    ev = train.EvalSet(x[::3], y[::3], x, y)
    result = train.train_dmch(x, y, 16, eval_set=ev, epochs=6, p=3, k=8, lr=1e-3, eval_every=3)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5, 6]
    assert "map" in result.history[2] and "map" not in result.history[0]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.final_map is not None and result.final_map > 0.9
    codes, u = train.encode_dmch(result.model, x[:4])
    assert codes.shape == u.shape == (4, 16)


def test_train_duwh_updates_similarity(cluster_factory: ClusterFactory) -> None:
    x, y = cluster_factory(n_classes=4, per_class=40, dim=24, seed=2)
    ev = train.EvalSet(x[::4], y[::4], x, y, topk=40)
    result = train.train_duwh(x, 16, eval_set=ev, epochs=3, batch_size=32, lr=1e-3, k1=8, k2=12)
    assert "u" in result.history[0] and "u" not in result.history[1]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.final_map is not None and result.final_map > 0.7


def test_duwh_pair_batches_hold_similar_pairs(clusters: Clusters) -> None:
    from ml.hashing.duwh import double_knn_similarity

    x, _ = clusters
    M = double_knn_similarity(x, 8, 12)
    batch = next(train.duwh_batches(M, 32, np.random.default_rng(0), pair=True))
    block = M[batch][:, batch].toarray()
    assert block.sum() > len(batch)  # more than the diagonal


def test_champion_promotion_only_on_improvement(tmp_path: Path, clusters: Clusters) -> None:
    mlflow = pytest.importorskip("mlflow")
    x, y = clusters
    ev = train.EvalSet(x[::2], y[::2], x, y)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train.train_dmch(x, y, 8, eval_set=ev, epochs=2, p=3, k=8, lr=1e-3)

    def run_with(val_map: float) -> train.Promotion:
        result.history[-1]["map"] = val_map
        run_id = train.track_run(
            result, tracking_uri=uri, experiment="t", retrieval_metrics={"map": val_map}
        )
        return train.promote_if_better(run_id, tracking_uri=uri, model_name="dmch-test")

    first, worse, better = run_with(0.5), run_with(0.4), run_with(0.6)
    assert (first.promoted, first.champion_map) == (True, None)
    assert not worse.promoted and worse.champion_map == pytest.approx(0.5)
    assert better.promoted and better.champion_map == pytest.approx(0.5)
    client = mlflow.MlflowClient(tracking_uri=uri)
    champion = client.get_model_version_by_alias("dmch-test", "champion")
    assert str(champion.version) == better.version == "3"
    run = client.get_run(champion.run_id)
    assert run.data.metrics["val_map"] == pytest.approx(0.6)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]


def test_a_broken_registry_stops_the_promotion(tmp_path: Path, clusters: Clusters) -> None:
    """Only "does not exist" means no champion: a registry that fails to answer must not let
    a new run take the alias from the real champion."""
    import sqlite3

    pytest.importorskip("mlflow")
    x, y = clusters
    ev = train.EvalSet(x[::2], y[::2], x, y)
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    result = train.train_dmch(x, y, 8, eval_set=ev, epochs=1, p=3, k=8, lr=1e-3)

    def tracked() -> str:
        return train.track_run(result, tracking_uri=uri, experiment="t", retrieval_metrics={})

    assert train.promote_if_better(tracked(), tracking_uri=uri, model_name="dmch-test").promoted
    run_id = tracked()
    with sqlite3.connect(db) as connection:
        connection.execute("drop table registered_model_aliases")
    with pytest.raises(train.RegistryError, match="dmch-test@champion"):
        train.promote_if_better(run_id, tracking_uri=uri, model_name="dmch-test")
    with sqlite3.connect(db) as connection:
        assert connection.execute("select count(*) from model_versions").fetchone() == (1,)
