"""Multi-scale fusion (paper Fig. 6): shapes, normalisation, stage selection."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ml.features.multiscale import FusionHead, MultiScaleEncoder, StagePooling


def test_pooling_concatenates_the_chosen_stages(backbone: nn.Module) -> None:
    pooling = StagePooling(backbone, stages=(2, 3, 4), include_head=True)
    assert pooling.stage_channels == (40, 112, 320, 1280)
    with torch.inference_mode():
        pooled = pooling(torch.randn(2, 3, 64, 64))
    assert pooled.shape == (2, 40 + 112 + 320 + 1280)
    no_head = StagePooling(backbone, stages=(1, 3), include_head=False)
    assert no_head.stage_channels == (24, 112)
    with torch.inference_mode():
        assert no_head(torch.randn(2, 3, 64, 64)).shape == (2, 136)
    with pytest.raises(ValueError, match="stages"):
        StagePooling(backbone, stages=(7,))


def test_fused_features_are_unit_norm_with_dimension_d(encoder: MultiScaleEncoder) -> None:
    with torch.inference_mode():
        z = encoder(torch.randn(3, 3, 64, 64))
    assert z.shape == (3, 128) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    assert encoder.dim == 128


def test_every_stage_contributes() -> None:
    head = FusionHead((4, 6), dim=5)
    pooled = torch.randn(2, 10)
    changed = pooled.clone()
    changed[:, :4] = torch.randn(2, 4)  # only the first stage differs
    with torch.no_grad():
        assert not torch.allclose(head(pooled), head(changed))
    # each stage is L2-normalised first, so scaling one stage changes nothing
    scaled = pooled.clone()
    scaled[:, 4:] *= 100.0
    with torch.no_grad():
        torch.testing.assert_close(head(pooled), head(scaled))


def test_projection_is_seeded_and_orthogonal() -> None:
    a, b = FusionHead((8, 8), dim=4, seed=3), FusionHead((8, 8), dim=4, seed=3)
    torch.testing.assert_close(a.proj.weight, b.proj.weight)
    w = a.proj.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="columns"):
        a(torch.randn(2, 15))


def test_head_must_match_pooling(backbone: nn.Module) -> None:
    with pytest.raises(ValueError, match="head expects"):
        MultiScaleEncoder(StagePooling(backbone), FusionHead((40, 112), dim=8))
