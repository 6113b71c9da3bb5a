"""The U-Net of the labelling pipeline: fuzzy C-means memberships in, pixel features out.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.4. Five encoder
and five decoder levels; the encoder starts at 64 kernels and doubles them at each level to
1024, the decoder halves them back. The input is every spectral band of a chip; the target
is the chip's fuzzy C-means memberships (:mod:`ml.labelling.fcm`), a multi-label problem, so
the output is one sigmoid per cluster. The last decoder layer's 64 activation maps are the
pixel features that :mod:`ml.labelling.graphs` averages per segment.

``width`` multiplies every level's channel count (``width=1``: 64..1024, the paper's 31M
parameters; ``width=0.25``: 16..256, which a 2-core CPU can train). Inputs whose side is not a
multiple of 16 are reflect-padded and the output cropped back.

Loss (section 2.4, a variation of combo loss, Taghanaki et al. 2019): per class c the Dice
loss L_D,c = 1 - (2 sum p t + eps) / (sum p + sum t + eps) and the binary cross-entropy
L_BCE,c; each averaged over the C classes, L = (1/C) sum_c L_D,c + (1/C) sum_c L_BCE,c.
Training augments with random 90-degree rotations and Gaussian noise and stops early when the
validation loss has not improved for ``patience`` epochs (the paper: 15).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.labelling.stopping import EarlyStopping, Training

LEVELS = 5
BASE_CHANNELS = 64


def level_channels(width: float = 1.0, levels: int = LEVELS) -> list[int]:
    """Channels of each level: 64 * width doubled per level (width 1: 64..1024)."""
    if width <= 0:
        raise ValueError(f"U-Net width multiplier must be > 0, got {width}")
    base = max(1, round(BASE_CHANNELS * width))
    return [base * 2**i for i in range(levels)]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each with batch norm and ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """5-level U-Net (section 2.4) returning cluster logits and last-decoder features.

    Args:
        in_channels: spectral bands of the input.
        n_classes: C, fuzzy C-means clusters.
        width: channel multiplier (1: 64..1024 channels).
    """

    def __init__(self, in_channels: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__()
        ch = level_channels(width)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.width = width
        self.feature_dim = ch[0]
        self.down = nn.ModuleList(
            [DoubleConv(in_channels, ch[0])]
            + [DoubleConv(ch[i - 1], ch[i]) for i in range(1, LEVELS)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(ch[i], ch[i - 1], 2, stride=2) for i in range(LEVELS - 1, 0, -1)]
        )
        self.dec = nn.ModuleList(
            [DoubleConv(2 * ch[i - 1], ch[i - 1]) for i in range(LEVELS - 1, 0, -1)]
        )
        self.head = nn.Conv2d(ch[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, C, H, W) and features (N, 64*width, H, W) of images (N, D, H, W)."""
        h, w = x.shape[-2:]
        mult = 2 ** (LEVELS - 1)
        ph, pw = (-h) % mult, (-w) % mult
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        features = x[..., :h, :w]
        return self.head(features), features


def dice_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Dice loss per class, averaged over the C classes: (1/C) sum_c L_D,c (section 2.4).

    Args:
        probs: predicted memberships p (N, C, H, W) in [0, 1].
        target: fuzzy C-means memberships t, same shape.
        eps: smoothing of numerator and denominator.
    """
    dims = (0, 2, 3)
    inter = (probs * target).sum(dims)
    total = probs.sum(dims) + target.sum(dims)
    return (1.0 - (2.0 * inter + eps) / (total + eps)).mean()


def combo_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice + binary cross-entropy, each averaged over classes (section 2.4)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((0, 2, 3))
    return dice_loss(torch.sigmoid(logits), target) + bce.mean()


def augment(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random 90-degree rotation of images and targets, and Gaussian noise on the images."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    if k:
        x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (2, 3))
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator).to(x.device)
    return x, y


@dataclass
class UNetTrainConfig:
    """U-Net training settings.

    Attributes:
        width: channel multiplier (1 is the paper's network).
        epochs: at most this many epochs.
        patience: stop after this many epochs without a lower validation loss (paper: 15).
        batch_size: chips per step.
        lr: Adam learning rate.
        noise: standard deviation of the Gaussian input noise (standardized units).
        seed: seeds initialisation, batches and augmentation.
        device: ``cpu`` or ``cuda``.
    """

    width: float = 0.25
    epochs: int = 40
    patience: int = 15
    batch_size: int = 8
    lr: float = 1e-3
    noise: float = 0.05
    seed: int = 0
    device: str = "cpu"


def train_unet(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: UNetTrainConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Training[UNet]:
    """Train the U-Net on chips ``x`` (N, D, H, W) against memberships ``y`` (N, C, H, W).

    Early stopping watches the combo loss on (``x_val``, ``y_val``); the returned model holds
    the weights of the best validation epoch.

    Raises:
        ValueError: empty training or validation set, or mismatched shapes.
    """
    if not len(x) or not len(x_val):
        raise ValueError("U-Net training needs at least one training and one validation chip")
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(f"chips {x.shape} and memberships {y.shape} do not line up")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    model = UNet(x.shape[1], y.shape[1], config.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    X, Y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    result = Training(model, device=config.device)
    stopper = EarlyStopping(config.patience)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(X), generator=gen)
        total = 0.0
        for s in range(0, len(X), config.batch_size):
            idx = order[s : s + config.batch_size]
            if len(idx) < 2 <= len(X):  # batch norm needs two samples at the 1x1 bottleneck
                continue
            xb, yb = augment(X[idx].to(device), Y[idx].to(device), gen, config.noise)
            loss = combo_loss(model(xb)[0], yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        val = evaluate_unet(model, x_val, y_val, config.batch_size, config.device)
        row = {"epoch": float(epoch), "train_loss": total / len(X), "val_loss": val}
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if stopper.update(model, val, epoch):
            break
    stopper.restore(model)
    result.val_loss, result.best_epoch = stopper.best_loss, stopper.best_epoch
    result.model = model.cpu().eval()
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def evaluate_unet(
    model: UNet, x: np.ndarray, y: np.ndarray, batch_size: int = 8, device: str = "cpu"
) -> float:
    """Mean combo loss of ``model`` on chips ``x`` against memberships ``y`` (no augmentation)."""
    model.eval()
    total = 0.0
    for s in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[s : s + batch_size], dtype=torch.float32, device=device)
        yb = torch.as_tensor(y[s : s + batch_size], dtype=torch.float32, device=device)
        total += float(combo_loss(model(xb)[0], yb)) * len(xb)
    return total / len(x)


@torch.no_grad()
def unet_outputs(
    model: UNet, x: np.ndarray, batch_size: int = 8, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Memberships (N, C, H, W) and features (N, 64*width, H, W), float32, of chips ``x``."""
    model = model.to(device).eval()
    probs, feats = [], []
    for s in range(0, len(x), batch_size):
        logits, f = model(torch.as_tensor(x[s : s + batch_size], dtype=torch.float32,
                                          device=device))
        probs.append(torch.sigmoid(logits).cpu().numpy())
        feats.append(f.cpu().numpy())
    return np.concatenate(probs), np.concatenate(feats)
