"""Multi-scale feature fusion of a CNN backbone (main paper, section 3.4.2, Fig. 6).

The paper fuses "the outputs from multiple convolutional layers at different levels of
the classification model" into one image feature. Here that is three steps:

1. :class:`StagePooling` runs the backbone once (timm ``forward_intermediates``) and
   global-average-pools the chosen stages in fp32, by default the stride-8/16/32 stages (40, 112
   and 320 channels for EfficientNet-Lite0) plus the 1280-channel head convolution.
2. :class:`FusionHead` L2-normalises each pooled stage (so no stage dominates by scale),
   concatenates them and projects to ``dim`` (D) with one linear layer, then L2-normalises,
   so inner product = cosine similarity in the index. The head always runs in fp32, also
   under bf16 autocast: it costs nothing and keeps bf16 features closer to fp32 ones.
3. :class:`MultiScaleEncoder` chains the two: images (N, 3, H, W) -> features (N, D).

The projection starts as a seeded orthogonal matrix (a distance-preserving random
projection, so an untrained head already gives usable features); the multi-label scene
model (:mod:`ml.features.scene_model`) trains it. Splitting pooling from the head lets
training run on cached pooled features, without the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_STAGES = (2, 3, 4)
DEFAULT_DIM = 512


class StagePooling(nn.Module):
    """Global-average-pooled stage outputs of a timm backbone, concatenated.

    Args:
        backbone: a timm model with ``forward_intermediates`` and ``feature_info``.
        stages: ``feature_info`` indices to pool (0 = stride 2 ... 4 = stride 32).
        include_head: also pool the head convolution (the classifier's input).
    """

    def __init__(
        self,
        backbone: nn.Module,
        stages: Sequence[int] = DEFAULT_STAGES,
        include_head: bool = True,
    ) -> None:
        super().__init__()
        info: Any = backbone.feature_info
        if not stages or any(not 0 <= s < len(info) for s in stages):
            raise ValueError(f"stages must be indices in [0, {len(info)}); got {list(stages)}")
        self.backbone = backbone
        self.stages = tuple(sorted(set(stages)))
        self.include_head = include_head
        channels = [int(info[s]["num_chs"]) for s in self.stages]
        if include_head:
            head_channels: Any = backbone.num_features
            channels.append(int(head_channels))
        self.stage_channels: tuple[int, ...] = tuple(channels)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The backbone's timm pretrained config (input mean/std, size)."""
        cfg: Any = self.backbone.pretrained_cfg
        return dict(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool each stage of ``x`` (N, 3, H, W) and concatenate to (N, sum(stage_channels))."""
        backbone: Any = self.backbone
        if self.include_head:
            head, maps = backbone.forward_intermediates(x, indices=list(self.stages))
            maps = [*maps, head]
        else:
            maps = backbone.forward_intermediates(
                x, indices=list(self.stages), intermediates_only=True, stop_early=True
            )
        return torch.cat([m.float().mean(dim=(2, 3)) for m in maps], dim=1)


class FusionHead(nn.Module):
    """Per-stage L2 normalisation, concatenation and projection to D (Fig. 6, fusion).

    Args:
        stage_channels: channel count of each pooled stage, in concatenation order.
        dim: output feature dimension D.
        seed: seed of the orthogonal initialisation of the projection.
    """

    def __init__(
        self, stage_channels: Sequence[int], dim: int = DEFAULT_DIM, seed: int = 0
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive; got {dim}")
        self.stage_channels = tuple(int(c) for c in stage_channels)
        self.dim = dim
        self.proj = nn.Linear(sum(self.stage_channels), dim)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            nn.init.orthogonal_(self.proj.weight, generator=generator)
            self.proj.bias.zero_()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Fuse pooled stages (N, sum(stage_channels)) into unit-norm features (N, D), fp32."""
        if pooled.shape[1] != sum(self.stage_channels):
            raise ValueError(
                f"expected pooled features with {sum(self.stage_channels)} columns "
                f"{self.stage_channels}; got shape {tuple(pooled.shape)}"
            )
        with torch.autocast(pooled.device.type, enabled=False):  # tiny: keep it fp32
            parts = torch.split(pooled.float(), list(self.stage_channels), dim=1)
            fused = torch.cat([F.normalize(p, dim=1) for p in parts], dim=1)
            return F.normalize(self.proj(fused), dim=1)


class MultiScaleEncoder(nn.Module):
    """Images (N, 3, H, W), normalised as the backbone expects -> features (N, D).

    Args:
        pooling: the backbone with its stage pooling.
        head: the fusion head; its ``stage_channels`` must match ``pooling``'s.
    """

    def __init__(self, pooling: StagePooling, head: FusionHead) -> None:
        super().__init__()
        if pooling.stage_channels != head.stage_channels:
            raise ValueError(
                f"head expects stages {head.stage_channels}, pooling gives {pooling.stage_channels}"
            )
        self.pooling = pooling
        self.head = head

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The backbone's timm pretrained config (input mean/std, size)."""
        return self.pooling.pretrained_cfg

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.head.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` (N, 3, H, W) into unit-norm features (N, D)."""
        return self.head(self.pooling(x))


def build_multiscale_encoder(
    dim: int = DEFAULT_DIM,
    stages: Sequence[int] = DEFAULT_STAGES,
    include_head: bool = True,
    head: FusionHead | None = None,
) -> MultiScaleEncoder:
    """The default encoder: EfficientNet-Lite0 (packaged ImageNet weights) + fusion head.

    Args:
        dim: feature dimension D of a new (untrained) head; ignored when ``head`` is given.
        stages: backbone stages to pool.
        include_head: also pool the backbone's head convolution.
        head: a trained fusion head (e.g. ``SceneModel.head``) to use instead of a new one.

    Returns:
        The encoder in eval mode.
    """
    from ml.features.backbone import create_backbone

    pooling = StagePooling(create_backbone(), stages, include_head)
    return MultiScaleEncoder(pooling, head or FusionHead(pooling.stage_channels, dim)).eval()
