"""TKANet's training loop: loss falls, validation picks the epoch, features are unit norm."""

import numpy as np

from ml.hir.train import TKANetTrainConfig, encode_tkanet, train_tkanet


def test_tkanet_trains_and_encodes() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (12, 3, 32, 32), dtype=np.uint8)
    y = np.arange(12) % 2
    images[y == 1, 2] = 230  # class 1 is blue
    config = TKANetTrainConfig(epochs=3, batch_size=4, lr=5e-3)
    result = train_tkanet(images, y, config, val=(images[:4], y[:4], images[4:], y[4:]), val_topk=3)
    assert [r["epoch"] for r in result.history] == [1.0, 2.0, 3.0]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    x = encode_tkanet(result.model, images[:5])
    assert x.shape == (5, 32) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert result.params["resolution"] == 32
