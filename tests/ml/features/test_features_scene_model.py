"""Multi-label scene model (paper 3.4.2): pair weights, losses, training, MLflow tracking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml.features.scene_model import (
    SceneTrainConfig,
    label_similarity,
    load_scene_model,
    pair_loss,
    train_scene_model,
)

CHANNELS = (8, 16)
N_LABELS = 5


def synthetic(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pooled "stage features" that carry the labels linearly, plus noise."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, N_LABELS)) < 0.35).astype(np.float32)
    W = rng.normal(size=(N_LABELS, sum(CHANNELS)))
    x = Y @ W + 0.3 * rng.normal(size=(n, sum(CHANNELS)))
    return x.astype(np.float32), Y


def test_label_similarity_is_jaccard() -> None:
    Y = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    S = label_similarity(Y)
    assert S[0, 0] == 1.0 and S[0, 1] == pytest.approx(0.5) and S[0, 2] == 0.0
    assert S[3, 3] == 0.0  # no labels: no weight
    torch.testing.assert_close(S, S.T)


def test_pair_loss_prefers_shared_labels_close() -> None:
    Y = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]])
    e0, e1 = torch.eye(2)
    good = torch.stack([e0, e0, e1, e1])  # same labels together, others orthogonal
    bad = torch.stack([e0, e1, e0, e1])  # swapped
    assert pair_loss(good, Y) < 1e-6
    assert pair_loss(bad, Y) > 1.0
    assert pair_loss(good[:1], Y[:1]) == 0.0


def test_training_lowers_the_loss_and_helps_retrieval() -> None:
    x, Y = synthetic()
    result = train_scene_model(
        x, Y, CHANNELS, SceneTrainConfig(dim=16, epochs=8, batch_size=32, val_fraction=0.25)
    )
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < 0.7 * first["train_loss"]
    assert last["val_label_map"] > 0.8
    assert last["val_retrieval_map"] > first["val_retrieval_map"]
    assert result.run_id is None and result.model_version is None


def test_training_rejects_bad_labels() -> None:
    x, Y = synthetic(20)
    with pytest.raises(ValueError, match="multi-hot"):
        train_scene_model(x, Y * 2, CHANNELS)
    with pytest.raises(ValueError, match="tracking_uri"):
        train_scene_model(x, Y, CHANNELS, registered_model_name="m")
    with pytest.raises(ValueError, match="label_names"):
        train_scene_model(x, Y, CHANNELS, label_names=["a"])


def test_mlflow_tracks_and_registers(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    import mlflow

    x, Y = synthetic(80)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train_scene_model(
        x,
        Y,
        CHANNELS,
        SceneTrainConfig(dim=8, epochs=2, val_fraction=0.25),
        label_names=[f"l{i}" for i in range(N_LABELS)],
        tracking_uri=uri,
        artifact_location=tmp_path / "artifacts",
        registered_model_name="scene_model_test",
    )
    assert result.model_version == "1"
    assert result.model_uri == "models:/scene_model_test/1"
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    assert run.data.params["epochs"] == "2"
    history = mlflow.MlflowClient(uri).get_metric_history(result.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1]
    loaded = load_scene_model(result.model_uri, uri)
    with torch.inference_mode():
        z0, _ = result.model(torch.from_numpy(x[:4]))
        z1, _ = loaded(torch.from_numpy(x[:4]))
    torch.testing.assert_close(z0, z1)
    assert (tmp_path / "artifacts").is_dir()
