import numpy as np
import torch

from ml.labelling.unet import (
    UNet,
    UNetTrainConfig,
    augment,
    combo_loss,
    dice_loss,
    level_channels,
    train_unet,
    unet_outputs,
)


def test_paper_widths_and_odd_sizes() -> None:
    assert level_channels(1.0) == [64, 128, 256, 512, 1024]
    assert level_channels(0.25) == [16, 32, 64, 128, 256]
    net = UNet(13, 8, width=0.125)
    logits, feats = net(torch.zeros(2, 13, 37, 50))
    assert logits.shape == (2, 8, 37, 50)
    assert feats.shape == (2, 8, 37, 50)


def test_dice_is_zero_for_a_perfect_prediction_and_loss_prefers_the_target() -> None:
    t = torch.rand(2, 3, 8, 8).round()
    assert float(dice_loss(t, t, eps=1e-6)) < 1e-5
    good = combo_loss((t * 2 - 1) * 10, t)
    bad = combo_loss((1 - t * 2) * 10, t)
    assert float(good) < 0.01 < float(bad)


def test_augment_rotates_images_and_targets_together() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    for seed in range(4):
        xa, ya = augment(x, x.clone(), torch.Generator().manual_seed(seed), noise=0.0)
        assert torch.equal(xa, ya)


def test_training_lowers_the_loss_and_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3, 16, 16)).astype(np.float32)
    y = np.stack([1 / (1 + np.exp(-4 * x[:, 0])), 1 - 1 / (1 + np.exp(-4 * x[:, 0]))], 1)
    config = UNetTrainConfig(width=0.125, epochs=12, patience=20, batch_size=4, lr=3e-3)
    result = train_unet(x[:9], y[:9], x[9:], y[9:], config)
    hist = result.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert result.val_loss == min(h["val_loss"] for h in hist)
    probs, feats = unet_outputs(result.model, x[9:])
    assert probs.shape == (3, 2, 16, 16) and feats.shape == (3, 8, 16, 16)
    early = train_unet(x[:9], y[:9], x[9:], y[9:],
                       UNetTrainConfig(width=0.125, epochs=50, patience=2, lr=0.0))
    assert len(early.history) == 3  # a frozen network never improves after epoch 1
