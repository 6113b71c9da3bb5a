"""TKANet (HIR Table I, Fig. 2): shapes, the TKA module's kernel sharing, the training head."""

import pytest
import torch
from torch.nn import functional as F

from ml.hir.tkanet import DILATIONS, STAGE_CHANNELS, TKAModule, TKANet


def test_tkanet_gives_a_32_d_feature_at_any_input_size() -> None:
    net = TKANet(n_classes=5).eval()
    for side in (64, 96):
        assert net(torch.randn(2, 3, side, side)).shape == (2, 32)
    assert net.logits(torch.randn(3, 3, 64, 64)).shape == (3, 5)
    convs = [m for m in net.body.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert [c.out_channels for c in convs] == list(STAGE_CHANNELS)
    assert sum(isinstance(m, TKAModule) for m in net.modules()) == 3


def test_tkanet_without_head_refuses_logits() -> None:
    with pytest.raises(ValueError, match="n_classes > 0"):
        TKANet().logits(torch.randn(1, 3, 64, 64))


def test_tka_branches_share_one_kernel_per_tier() -> None:
    torch.manual_seed(0)
    module = TKAModule(8).eval()
    params = dict(module.named_parameters())
    depthwise = [k for k, p in params.items() if p.dim() == 4 and p.shape[1] == 1]
    assert depthwise == ["tiers.0.weight", "tiers.1.weight"]  # one 3x3 kernel per tier
    x = torch.randn(2, 8, 12, 12)
    tier = module.tiers[0]
    outs = tier([x] * 3)
    for d, out, norm in zip(DILATIONS, outs, tier.norms, strict=True):
        ref = F.relu(norm(F.conv2d(x, tier.weight, padding=d, dilation=d, groups=8)))
        assert torch.allclose(out, ref, atol=1e-6)
    assert not torch.allclose(outs[0], outs[2])  # same kernel, different dilation


def test_tka_fuses_branches_by_addition_keeping_channels() -> None:
    module = TKAModule(16).eval()
    x = torch.randn(1, 16, 10, 10)
    branches = [x] * 3
    for tier in module.tiers:
        branches = tier(branches)
    assert torch.allclose(module(x), module.pointwise(sum(branches)), atol=1e-6)
    assert module(x).shape == x.shape
