"""TKANet: the low-dimensional feature network of HIR stage 1.

Specification: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``, section
II.B, Fig. 2 and Table I.

* :class:`TKAModule` (Fig. 2): two tiers of tri-branch 3x3 depthwise atrous convolutions with
  dilation rates (1, 2, 3); within a tier the three branches share one kernel. The three
  branch maps are fused by addition (the channel count does not grow) and a pointwise
  convolution fuses the channels.
* :class:`TKANet` (Table I): five ``ConvS2`` stages (3x3 stride-2 convolution, batch norm,
  ReLU) to 32, 64, 128, 192 and 256 channels, a TKA module after stages 3, 4 and 5, global
  average pooling and a fully-connected layer whose 32 outputs are the stage-1 CBIR feature.

Gaps in the paper, filled here: Fig. 2 does not say whether normalisation follows each
depthwise tier; each branch gets its own batch norm and ReLU after each tier (a kernel is
shared, but the statistics of a map dilated by 1 and by 3 differ), and the pointwise fusion
is a 1x1 convolution with batch norm and ReLU. The paper gives no training recipe; the
network is trained as a classifier (``head``, a linear layer on the 32-d feature, cross
entropy) on the archive's scene labels, see :func:`ml.hir.train.train_tkanet`. Table I is
for 256x256 inputs; the network is fully convolutional up to the pooling, so smaller
inputs (128x128 for affordable CPU training) give the same 32-d feature.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DILATIONS = (1, 2, 3)
FEATURE_DIM = 32
# Table I: output channels of ConvS2 stages 1-5, and which stages end in a TKA module.
STAGE_CHANNELS = (32, 64, 128, 192, 256)
TKA_STAGES = (2, 3, 4)  # zero-based: stages 3, 4 and 5


class SharedDepthwiseAtrous(nn.Module):
    """One tier of Fig. 2: a 3x3 depthwise kernel applied at dilations (1, 2, 3).

    The one ``weight`` (C, 1, 3, 3) serves all three branches; padding equals the dilation,
    so each branch keeps the spatial size.

    Args:
        channels: C, the depthwise channels.
        dilations: the branches' dilation rates.
    """

    def __init__(self, channels: int, dilations: tuple[int, ...] = DILATIONS) -> None:
        super().__init__()
        self.dilations = dilations
        self.weight = nn.Parameter(torch.empty(channels, 1, 3, 3))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in dilations)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Apply the shared kernel to each branch's input.

        Args:
            xs: one (B, C, H, W) map per branch (the first tier passes the same map thrice).

        Returns:
            One (B, C, H, W) map per branch, after batch norm and ReLU.
        """
        groups = self.weight.shape[0]
        return [
            F.relu(norm(F.conv2d(x, self.weight, padding=d, dilation=d, groups=groups)))
            for x, d, norm in zip(xs, self.dilations, self.norms, strict=True)
        ]


class TKAModule(nn.Module):
    """Tri-branch Kernel-sharing Atrous convolution module (paper Fig. 2).

    ``y = PW(sum_{d in (1, 2, 3)} T2_d(T1_d(x)))`` where ``T1_d`` and ``T2_d`` are the first
    and second tier's depthwise 3x3 convolutions at dilation ``d`` (one kernel per tier for
    all three ``d``) and ``PW`` the pointwise channel fusion.

    Args:
        channels: input and output channels C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.tiers = nn.ModuleList(SharedDepthwiseAtrous(channels) for _ in range(2))
        self.pointwise = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        branches = [x] * len(DILATIONS)
        for tier in self.tiers:
            branches = tier(branches)
        return self.pointwise(torch.stack(branches).sum(dim=0))


def conv_s2(c_in: int, c_out: int) -> nn.Sequential:
    """``ConvS2`` of Table I: 3x3 convolution with stride 2, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class TKANet(nn.Module):
    """TKANet of paper Table I: (B, 3, H, W) images -> (B, 32) features.

    Args:
        n_classes: classes of the training head (a linear layer on the 32-d feature);
            0 builds the feature extractor alone.
        feature_dim: width of the fully-connected feature layer (32 in the paper).
    """

    def __init__(self, n_classes: int = 0, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for stage, c_out in enumerate(STAGE_CHANNELS):
            layers.append(conv_s2(c_in, c_out))
            if stage in TKA_STAGES:
                layers.append(TKAModule(c_out))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(STAGE_CHANNELS[-1], feature_dim)
        self.head = nn.Linear(feature_dim, n_classes) if n_classes > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The 32-d stage-1 feature of Table I's fully-connected layer.

        Args:
            x: images (B, 3, H, W), normalised to [-1, 1].

        Returns:
            Features (B, feature_dim).
        """
        return self.fc(self.body(x).mean(dim=(2, 3)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) of the training head.

        Raises:
            ValueError: the network was built without a head (``n_classes=0``).
        """
        if self.head is None:
            raise ValueError("this TKANet has no classification head; build it with n_classes > 0")
        return self.head(self.forward(x))
