"""ESFormer: the land-cover classification network of HIR stage 2.

Specification: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``, section
II.C and Fig. 3.

* Encoder: the paper uses EfficientNetV2. No EfficientNetV2 ImageNet weights exist offline
  here, so the encoder is the ImageNet EfficientNet-Lite0 of :mod:`ml.features.backbone`
  (``pretrained=False`` builds it with random weights, for tests). Lite0's blocks map onto
  the paper's stages by output stride: ``blocks[2]`` (stride 8, 40 channels) is "Stage 3",
  ``blocks[4]`` (stride 16, 112 channels) is "Stage 5"; the stride-32 blocks are not used.
* Stage 5 is upsampled (nearest) to stage 3's size and combined with it (concatenation
  then a linear projection to ``dim`` channels).
* Multi-granularity tokens (:class:`MultiGranularityTokens`): the projections Q', K', V'
  are split channel-wise into four segments; the first is left unchanged and the other
  three go through 3x3 depthwise convolutions whose receptive fields are 3x3, 5x5 and 7x7
  patches. The paper writes their dilation rates as (0, 1, 2); a 3x3 kernel covers those
  patches at dilations (1, 2, 3) in PyTorch's convention, which is what is used. The four
  segments are concatenated into Q, K and V.
* Decoder: sequential Swin Transformer blocks (window attention, every second block with
  shifted windows) whose attention takes the multi-granularity Q, K, V.
* Head: a 1x1 convolution, logits upsampled 8x bilinearly. Two auxiliary heads (1x1
  convolutions on stages 3 and 5, upsampled 8x and 16x) exist for training only: the
  forward pass returns them in training mode and not in eval mode.

Gaps filled here: the decoder width, depth, window size and head count are not given
(defaults: 96 channels, 2 blocks, 8x8 windows, 4 heads).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

TOKEN_DILATIONS = (1, 2, 3)  # segments 2-4: 3x3, 5x5 and 7x7 patches
STAGE3_BLOCK, STAGE5_BLOCK = 2, 4  # Lite0 blocks ending at stride 8 and 16
STAGE3_CHANNELS, STAGE5_CHANNELS = 40, 112


class LiteEncoder(nn.Module):
    """EfficientNet-Lite0 stem and blocks 0-4: the "Stage 3" and "Stage 5" maps.

    Args:
        pretrained: fill with the offline ImageNet weights (``ml.features.backbone``).
        checkpoint: those weights from this file instead of the installed package (a
            machine without it).
    """

    def __init__(self, pretrained: bool = True, checkpoint: str | None = None) -> None:
        super().__init__()
        if pretrained:
            from ml.features.backbone import create_backbone

            model = create_backbone(checkpoint=checkpoint)
        else:
            import timm

            model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        stem, bn, blocks = (cast(nn.Module, getattr(model, name))
                            for name in ("conv_stem", "bn1", "blocks"))
        self.stem = nn.Sequential(stem, bn)
        self.blocks = nn.ModuleList(list(blocks.children())[: STAGE5_BLOCK + 1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> stage 3 (B, 40, H/8, W/8), stage 5 (B, 112, H/16, W/16)."""
        x = self.stem(x)
        s3 = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == STAGE3_BLOCK:
                s3 = x
        return s3, x


class MultiGranularityTokens(nn.Module):
    """Four token segments with growing receptive fields (paper II.C).

    Args:
        dim: channels of Q' (or K', V'); divisible by 4.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError(f"dim must be divisible by 4 (four token segments); got {dim}")
        seg = dim // 4
        self.segment = seg
        self.convs = nn.ModuleList(
            nn.Conv2d(seg, seg, 3, padding=d, dilation=d, groups=seg) for d in TOKEN_DILATIONS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H, W, dim): segment 1 unchanged, 2-4 convolved."""
        parts = x.permute(0, 3, 1, 2).split(self.segment, dim=1)
        out = [parts[0], *(conv(p) for conv, p in zip(self.convs, parts[1:], strict=True))]
        return torch.cat(out, dim=1).permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window * window, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)


def window_merge(x: torch.Tensor, window: int, B: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    C = x.shape[-1]
    x = x.view(B, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)


def shifted_window_mask(H: int, W: int, window: int, shift: int) -> torch.Tensor:
    """Attention mask of Swin's shifted windows: (nW, N, N), -inf across image regions."""
    regions = torch.zeros(1, H, W, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for h in cuts:
        for w in cuts:
            regions[:, h, w, :] = label
            label += 1
    ids = window_partition(regions, window).squeeze(-1)
    mask = ids[:, None, :] - ids[:, :, None]
    return mask.masked_fill(mask != 0, float("-inf"))


class SwinBlock(nn.Module):
    """A Swin Transformer block whose (shifted-)window attention uses multi-granularity tokens.

    Args:
        dim: token channels.
        heads: attention heads.
        window: window side.
        shift: cyclic shift (0 for W-MSA, ``window // 2`` for SW-MSA).
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.tokens = nn.ModuleList(MultiGranularityTokens(dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H, W, dim); H and W multiples of the window."""
        return x + self.mlp(self.norm2(x := x + self._attention(self.norm1(x))))

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        window = min(self.window, H, W)
        shift = self.shift if window < min(H, W) else 0
        q, k, v = (mg(t) for mg, t in zip(self.tokens, self.qkv(x).chunk(3, dim=-1), strict=True))
        if shift:
            q, k, v = (torch.roll(t, (-shift, -shift), dims=(1, 2)) for t in (q, k, v))
        q, k, v = (self._heads(window_partition(t, window)) for t in (q, k, v))
        mask = None
        if shift:
            mask = shifted_window_mask(H, W, window, shift).to(x.device, x.dtype)
            mask = mask.repeat(B, 1, 1)[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(-1, window * window, C)
        out = window_merge(out, window, B, H, W)
        if shift:
            out = torch.roll(out, (shift, shift), dims=(1, 2))
        return self.proj(out)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        n, N, C = t.shape
        return t.view(n, N, self.heads, C // self.heads).transpose(1, 2)


class ESFormer(nn.Module):
    """ESFormer (paper Fig. 3): (B, 3, H, W) images -> (B, n_classes, H, W) land-cover logits.

    In training mode :meth:`forward` returns ``(main, aux3, aux5)``, all upsampled to the
    input size; in eval mode the main logits alone (the auxiliary heads cost nothing).

    Args:
        n_classes: land-cover classes.
        dim: decoder token channels (divisible by 4 and by ``heads``).
        depth: Swin blocks.
        heads: attention heads.
        window: attention window side.
        pretrained: ImageNet weights for the encoder.
        checkpoint: a file with those weights; None takes the installed package's.
    """

    def __init__(
        self,
        n_classes: int,
        dim: int = 96,
        depth: int = 2,
        heads: int = 4,
        window: int = 8,
        pretrained: bool = True,
        checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        self.encoder = LiteEncoder(pretrained, checkpoint)
        self.project = nn.Linear(STAGE3_CHANNELS + STAGE5_CHANNELS, dim)
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, shift=(window // 2) * (i % 2)) for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Conv2d(dim, n_classes, 1)
        self.aux3 = nn.Conv2d(STAGE3_CHANNELS, n_classes, 1)
        self.aux5 = nn.Conv2d(STAGE5_CHANNELS, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Land-cover logits (B, n_classes, H, W); with the two auxiliary ones in training.

        Args:
            x: images (B, 3, H, W) in [-1, 1], H and W multiples of 16.
        """
        return self.decode(*self.encoder(x))

    def decode(self, s3: torch.Tensor, s5: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Decoder and heads on the encoder's stage 3 (B, 40, h, w) and 5 (B, 112, h/2, w/2) maps.

        Returns:
            The main logits upsampled 8x, (B, n_classes, 8h, 8w); in training mode also the
            auxiliary logits of stage 3 (upsampled 8x) and stage 5 (upsampled 16x).
        """
        up5 = F.interpolate(s5, size=s3.shape[-2:], mode="nearest")
        tokens = self.project(torch.cat([s3, up5], dim=1).permute(0, 2, 3, 1))
        for block in self.blocks:
            tokens = block(tokens)
        features = self.norm(tokens).permute(0, 3, 1, 2)
        main = F.interpolate(self.head(features), scale_factor=8, mode="bilinear",
                             align_corners=False)
        if not self.training:
            return main
        aux3 = F.interpolate(self.aux3(s3), scale_factor=8, mode="bilinear", align_corners=False)
        aux5 = F.interpolate(self.aux5(s5), scale_factor=16, mode="bilinear", align_corners=False)
        return main, aux3, aux5
