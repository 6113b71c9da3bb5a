"""ESFormer (HIR II.C): heads and upsampling, multi-granularity tokens, weak training."""

import numpy as np
import pytest
import torch

from ml.hir.esformer import ESFormer, MultiGranularityTokens, shifted_window_mask
from ml.hir.train import ESFormerTrainConfig, class_proportions, multilabel_map, train_esformer


@pytest.fixture(scope="module")
def model() -> ESFormer:
    torch.manual_seed(0)
    return ESFormer(5, dim=32, depth=2, heads=2, window=4, pretrained=False)


def test_auxiliary_heads_only_in_training(model: ESFormer) -> None:
    x = torch.randn(2, 3, 64, 64)
    model.train()
    main, aux3, aux5 = model(x)
    assert main.shape == aux3.shape == aux5.shape == (2, 5, 64, 64)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 64, 64)


def test_main_logits_are_8x_bilinear_of_the_head(model: ESFormer) -> None:
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        s3, _ = model.encoder(x)
        assert s3.shape[-1] == 8  # stride 8 ("Stage 3")
        assert model(x).shape[-1] == 8 * s3.shape[-1]


def test_first_token_segment_is_unchanged_others_convolved() -> None:
    tokens = MultiGranularityTokens(16)
    x = torch.randn(2, 6, 6, 16)
    out = tokens(x)
    assert out.shape == x.shape
    assert torch.equal(out[..., :4], x[..., :4])
    assert [c.dilation for c in tokens.convs] == [(1, 1), (2, 2), (3, 3)]
    with pytest.raises(ValueError, match="divisible by 4"):
        MultiGranularityTokens(10)


def test_shifted_window_mask_blocks_attention_across_regions() -> None:
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all()  # the first window holds one region
    assert torch.isinf(mask[-1]).any()


def test_class_proportions_are_distributions() -> None:
    cam = torch.randn(3, 4, 8, 8)
    for mode in ("soft", "hard"):
        p = class_proportions(cam, mode)
        assert p.shape == (3, 4) and torch.allclose(p.sum(1), torch.ones(3))
    cam = torch.full((1, 3, 2, 2), -5.0)
    cam[0, 1, :, :1] = 5.0
    assert class_proportions(cam, "hard").tolist() == [[0.5, 0.5, 0.0]]
    with pytest.raises(ValueError, match="soft"):
        class_proportions(cam, "median")  # type: ignore[arg-type]


def test_weak_training_loss_falls_and_keeps_best_epoch() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 3, 64, 64), dtype=np.uint8)
    Y = np.zeros((8, 3), np.float32)
    Y[:4, 0] = 1
    Y[4:, 1] = 1
    images[:4, 0] = 250  # a red class the CAMs can find
    config = ESFormerTrainConfig(epochs=3, batch_size=4, lr=5e-3, dim=16, heads=2, window=4,
                                 pretrained=False)
    result = train_esformer(images, Y, config, val=(images, Y))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert result.final_map is not None and 0.0 <= result.final_map <= 1.0
    assert not result.model.training


def test_multilabel_map_is_one_for_a_perfect_ranking() -> None:
    Y = np.array([[1, 0], [0, 1], [1, 0]])
    assert multilabel_map(Y.astype(float), Y) == 1.0


def test_end_to_end_training_moves_the_encoder_and_returns_a_cpu_model() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (8, 3, 64, 64), dtype=np.uint8)
    Y = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    config = ESFormerTrainConfig(epochs=1, batch_size=4, dim=16, heads=2, window=4,
                                 pretrained=False, freeze_encoder=False)
    torch.manual_seed(config.seed)  # the same initial weights as the training run's model
    before = ESFormer(2, 16, 2, 2, 4, pretrained=False).encoder.stem[0].weight.clone()
    result = train_esformer(images, Y, config, val=(images, Y))  # validation re-encodes
    after = result.model.encoder.stem[0].weight
    assert after.device.type == "cpu" and not torch.allclose(before, after)
    assert result.history[0]["map"] >= 0.0
