"""Training and inference of HIR's two networks on in-memory uint8 images.

Specification: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``.
The paper trains TKANet on the 1,470 archive images (section III.A) without giving a
recipe, and ESFormer on DLRSD's pixel masks (17 classes). Here:

* :func:`train_tkanet`: cross entropy on the scene labels through TKANet's training head
  (AdamW, cosine learning rate, random flips and 90-degree rotations).
* :func:`train_esformer`: **weak supervision**. DLRSD's masks cannot be had offline; UC
  Merced's multi-label annotation names the same 17 classes per image. The per-pixel logits
  are the class-activation maps; their spatial mean is the image logit, trained with
  multi-label binary cross entropy (BCE) on the image labels, for the main head and, with
  weight ``aux_weight``, the two auxiliary heads (the paper's auxiliary losses; their weight
  is not given).
* :func:`class_proportions`: per-pixel class scores ``sigmoid(CAM)`` become per-pixel class
  distributions; their image mean (``soft``), or the histogram of each pixel's arg-max class
  (``hard``, the paper's "distribution of pixel classes"), is the image's land-cover
  statistic X of Eq. 1.

Both loops return :class:`ml.hashing.train.TrainResult` (one history row per epoch, ``map``
on validation epochs) and keep the weights of the best validation epoch: validation is a
split of the training data, never the evaluation queries.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.hashing.train import TrainResult
from ml.hir.esformer import ESFormer
from ml.hir.tkanet import TKANet
from ml.metrics import mean_average_precision, relevance

log = logging.getLogger(__name__)

Proportions = Literal["soft", "hard"]
EpochHook = Callable[[dict[str, float]], None]


def to_input(
    images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """uint8 (B, 3, H, W) images -> float32 in [-1, 1] (the Lite0 checkpoint's scaling).

    The images move to ``device`` as uint8, a quarter of the bytes of float32.
    """
    x = torch.as_tensor(images).to(device, non_blocking=True)
    return x.float().div(127.5).sub(1.0)


def device_of(model: nn.Module) -> torch.device:
    """The device ``model``'s parameters live on (inputs follow it)."""
    return next(model.parameters()).device


def augment(x: torch.Tensor, generator: torch.Generator, *more: torch.Tensor) -> list[torch.Tensor]:
    """One random dihedral transform (flip and a multiple of 90 degrees) of every batch given.

    Aerial scenes have no up direction, so the labels are unchanged; ``more`` (e.g. the
    encoder's other stage map) gets the same transform as ``x``.
    """
    turns = int(torch.randint(4, (1,), generator=generator))
    flip = bool(torch.randint(2, (1,), generator=generator))
    out = [torch.rot90(t, turns, dims=(2, 3)) for t in (x, *more)]
    return [torch.flip(t, dims=(3,)) for t in out] if flip else out


def _check_images(images: np.ndarray, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8 or not len(images):
        raise ValueError(f"{name} must be non-empty uint8 (N, 3, H, W); got {images.dtype} "
                         f"{images.shape}")


@dataclass(frozen=True)
class TKANetTrainConfig:
    """Hyper-parameters of :func:`train_tkanet` (the paper gives none).

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: AdamW peak learning rate (cosine decay to 0).
        weight_decay: AdamW weight decay.
        seed: seed of initialisation, shuffling and augmentation.
        device: where training runs (``cpu``, ``cuda``); the returned model is on the CPU.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"


@torch.no_grad()
def encode_tkanet(model: TKANet, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Unit-norm 32-d stage-1 features (n, 32) float32 of uint8 images (n, 3, H, W)."""
    model.eval()
    device = device_of(model)
    out = [model(to_input(images[s : s + batch_size], device))
           for s in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(out), dim=1).cpu().numpy()


def _val_map(model: TKANet, val: tuple[np.ndarray, ...], topk: int) -> float:
    """mAP@topk of Euclidean ranking of the validation queries against the database."""
    images_q, yq, images_b, yb = val
    xq, xb = encode_tkanet(model, images_q), encode_tkanet(model, images_b)
    D = ((xq[:, None, :] - xb[None, :, :]) ** 2).sum(axis=2)
    return mean_average_precision(D, relevance(yq, yb), topk)


def _keep_best(
    best: tuple[float, dict[str, torch.Tensor]] | None, score: float, model: nn.Module
) -> tuple[float, dict[str, torch.Tensor]]:
    """The best validation epoch's (score, weights) so far: ``model``'s own if it beats ``best``."""
    if best is None or score > best[0]:
        return score, copy.deepcopy(model.state_dict())
    return best


def train_tkanet(
    images: np.ndarray,
    y: np.ndarray,
    config: TKANetTrainConfig | None = None,
    *,
    val: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    val_topk: int = 20,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train TKANet (paper Table I) as a scene classifier; its 32-d layer is the feature.

    Args:
        images: training images, uint8 (n, 3, H, W).
        y: class ids (n,).
        config: hyper-parameters.
        val: (query images, query labels, database images, database labels) carved from the
            training data; the weights of the epoch with the best ``map`` are kept.
        val_topk: R of the validation mAP@R.
        on_epoch: called with each epoch's history row (progress reporting).

    Returns:
        The trained model (eval mode) and its history.
    """
    config = config or TKANetTrainConfig()
    _check_images(images, "images")
    y = np.asarray(y, np.int64)
    if len(y) != len(images):
        raise ValueError(f"y has {len(y)} labels but images has {len(images)} rows")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = TKANet(int(y.max()) + 1).to(config.device)
    steps = config.epochs * max(1, len(images) // config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps)
    target = torch.from_numpy(y).to(config.device)
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        losses, correct = [], 0
        for s in range(0, len(order) - config.batch_size + 1, config.batch_size):
            idx = order[s : s + config.batch_size]
            x = to_input(images[idx.numpy()], config.device)
            logits = model.logits(augment(x, generator)[0])
            loss = F.cross_entropy(logits, target[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == target[idx]).sum())
        row = {"epoch": float(epoch), "loss": float(np.mean(losses)),
               "train_acc": correct / max(1, len(losses) * config.batch_size)}
        if val is not None:
            row["map"] = _val_map(model, val, val_topk)
            best = _keep_best(best, row["map"], model)
        history.append(row)
        log.info("tkanet epoch %d %s", epoch, row)
        if on_epoch is not None:
            on_epoch(row)
    if best is not None:
        model.load_state_dict(best[1])
    model.cpu().eval()
    params = {"model": "tkanet", "in_dim": 3, "n_classes": int(y.max()) + 1,
              "resolution": images.shape[-1], "n_train": len(images), **asdict(config)}
    return TrainResult(model, history, params)


@dataclass(frozen=True)
class ESFormerTrainConfig:
    """Hyper-parameters of :func:`train_esformer` (weak, image-level supervision).

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: AdamW peak learning rate of the decoder and heads (cosine decay).
        encoder_lr: peak learning rate of the ImageNet encoder.
        weight_decay: AdamW weight decay.
        aux_weight: weight of each auxiliary head's BCE.
        dim: decoder width; depth: Swin blocks; heads: attention heads; window: window side.
        pretrained: ImageNet encoder weights (False only for tests).
        checkpoint: a file holding them, for a machine without the weights' package.
        freeze_encoder: keep the ImageNet encoder fixed and train the decoder and heads on
            its stage maps, computed once (affordable on a CPU; the auxiliary losses then
            train their own heads but cannot bolster the encoder as in the paper).
        seed: seed of initialisation, shuffling and augmentation.
        device: where training runs (``cpu``, ``cuda``); the returned model is on the CPU.
    """

    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: float = 2e-4
    weight_decay: float = 1e-4
    aux_weight: float = 0.4
    dim: int = 96
    depth: int = 2
    heads: int = 4
    window: int = 8
    pretrained: bool = True
    checkpoint: str | None = None
    freeze_encoder: bool = True
    seed: int = 0
    device: str = "cpu"


def image_logits(cam: torch.Tensor) -> torch.Tensor:
    """Image-level logits (B, C): the spatial mean of the class-activation maps (B, C, H, W)."""
    return cam.mean(dim=(2, 3))


def multilabel_map(scores: np.ndarray, Y: np.ndarray) -> float:
    """Mean over classes present in ``Y`` of the average precision of ranking by ``scores``.

    Args:
        scores: image-level scores (n, C).
        Y: 0/1 labels (n, C).
    """
    aps = []
    for c in range(Y.shape[1]):
        if Y[:, c].any():
            order = np.argsort(-scores[:, c], kind="stable")
            rel = Y[order, c] > 0
            hits = np.cumsum(rel)
            aps.append(float((hits / np.arange(1, len(rel) + 1))[rel].mean()))
    return float(np.mean(aps)) if aps else 0.0


@dataclass(frozen=True)
class LandcoverPrediction:
    """ESFormer's output for n images.

    Attributes:
        soft: land-cover statistics (n, C), mode ``soft`` of :func:`class_proportions`.
        hard: land-cover statistics (n, C), mode ``hard``.
        scores: image-level sigmoid scores (n, C).
    """

    soft: np.ndarray
    hard: np.ndarray
    scores: np.ndarray

    def proportions(self, mode: Proportions) -> np.ndarray:
        """The statistics of ``mode`` (``soft`` or ``hard``)."""
        if mode not in ("soft", "hard"):
            raise ValueError(f"mode must be 'soft' or 'hard'; got {mode!r}")
        return self.soft if mode == "soft" else self.hard


@torch.no_grad()
def predict_landcover(
    model: ESFormer, images: np.ndarray, batch_size: int = 32
) -> LandcoverPrediction:
    """Land-cover statistics (both modes) and image-level scores of uint8 images (n, 3, H, W)."""
    model.eval()
    device = device_of(model)
    out: dict[str, list[torch.Tensor]] = {"soft": [], "hard": [], "scores": []}
    for s in range(0, len(images), batch_size):
        cam = cast(torch.Tensor, model(to_input(images[s : s + batch_size], device)))  # main only
        out["soft"].append(class_proportions(cam, "soft"))
        out["hard"].append(class_proportions(cam, "hard"))
        out["scores"].append(torch.sigmoid(image_logits(cam)))
    soft, hard, scores = (torch.cat(out[k]).cpu().numpy() for k in ("soft", "hard", "scores"))
    return LandcoverPrediction(soft, hard, scores)


@torch.no_grad()
def encoder_maps(
    model: ESFormer, images: np.ndarray, batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's stage 3 and stage 5 maps of uint8 images, computed once."""
    model.encoder.eval()
    device = device_of(model)
    maps = [model.encoder(to_input(images[s : s + batch_size], device))
            for s in range(0, len(images), batch_size)]
    return torch.cat([m[0] for m in maps]), torch.cat([m[1] for m in maps])


def class_proportions(cam: torch.Tensor, mode: Proportions = "soft") -> torch.Tensor:
    """Land-cover class distribution of each image from its class-activation maps.

    Each pixel's class scores ``s_c = sigmoid(CAM_c)`` (independent, from BCE training) are
    normalised into a distribution over classes ``p_c = s_c / sum_c' s_c'``. ``soft``
    averages ``p`` over the pixels; ``hard`` counts each pixel's arg-max class (the paper's
    distribution of pixel classes).

    Args:
        cam: per-pixel logits (B, C, H, W).
        mode: ``soft`` or ``hard``.

    Returns:
        (B, C) float32 proportions, each row summing to 1.
    """
    s = torch.sigmoid(cam.float())
    if mode == "soft":
        return (s / s.sum(dim=1, keepdim=True).clamp_min(1e-12)).mean(dim=(2, 3))
    if mode == "hard":
        counts = F.one_hot(s.argmax(dim=1), cam.shape[1]).float().mean(dim=(1, 2))
        return counts
    raise ValueError(f"mode must be 'soft' or 'hard'; got {mode!r}")


def train_esformer(
    images: np.ndarray,
    Y: np.ndarray,
    config: ESFormerTrainConfig | None = None,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train ESFormer weakly: multi-label BCE of the CAMs' spatial means (main + auxiliary).

    Args:
        images: training images, uint8 (n, 3, H, W); H, W multiples of 16.
        Y: 0/1 image labels (n, C) over the land-cover classes.
        config: hyper-parameters.
        val: (images, labels) carved from the training data; ``map`` is the mean per-class
            AP of the image-level scores, and the best epoch's weights are kept.
        on_epoch: called with each epoch's history row.

    Returns:
        The trained model (eval mode) and its history.
    """
    config = config or ESFormerTrainConfig()
    _check_images(images, "images")
    Y = np.asarray(Y, np.float32)
    if Y.ndim != 2 or len(Y) != len(images):
        raise ValueError(f"Y must be (n, C) with n = {len(images)}; got {Y.shape}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = ESFormer(Y.shape[1], config.dim, config.depth, config.heads, config.window,
                     pretrained=config.pretrained, checkpoint=config.checkpoint).to(config.device)
    encoder = list(model.encoder.parameters())
    ids = {id(p) for p in encoder}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": rest, "lr": config.lr}]
    val_maps = None  # an encoder that trains is re-run on the validation images each epoch
    if config.freeze_encoder:
        model.encoder.requires_grad_(False)
        maps = encoder_maps(model, images)
        val_maps = encoder_maps(model, val[0]) if val is not None else None
    else:
        groups.append({"params": encoder, "lr": config.encoder_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, len(images) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, [float(g["lr"]) for g in groups], total_steps=steps
    )
    target = torch.from_numpy(Y).to(config.device)
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, config.epochs + 1):
        model.train()
        if config.freeze_encoder:
            model.encoder.eval()  # frozen: batch-norm statistics stay ImageNet's
        order = torch.randperm(len(images), generator=generator)
        losses = []
        for s in range(0, len(order) - config.batch_size + 1, config.batch_size):
            idx = order[s : s + config.batch_size]
            if config.freeze_encoder:
                main, aux3, aux5 = model.decode(*augment(maps[0][idx], generator, maps[1][idx]))
            else:
                x = to_input(images[idx.numpy()], config.device)
                main, aux3, aux5 = model(augment(x, generator)[0])
            t = target[idx]
            loss = F.binary_cross_entropy_with_logits(image_logits(main), t) + config.aux_weight * (
                F.binary_cross_entropy_with_logits(image_logits(aux3), t)
                + F.binary_cross_entropy_with_logits(image_logits(aux5), t)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        row = {"epoch": float(epoch), "loss": float(np.mean(losses)) if losses else float("nan")}
        if val is not None:
            row["map"] = multilabel_map(_val_scores(model, val[0], val_maps), np.asarray(val[1]))
            best = _keep_best(best, row["map"], model)
        history.append(row)
        log.info("esformer epoch %d %s", epoch, row)
        if on_epoch is not None:
            on_epoch(row)
    if best is not None:
        model.load_state_dict(best[1])
    model.cpu().eval()
    params = {"model": "esformer", "in_dim": 3, "n_classes": Y.shape[1],
              "resolution": images.shape[-1], "n_train": len(images),
              "supervision": "weak: image-level multi-label BCE on class-activation maps",
              **asdict(config)}
    return TrainResult(model, history, params)


@torch.no_grad()
def _val_scores(
    model: ESFormer, images: np.ndarray, maps: tuple[torch.Tensor, torch.Tensor] | None
) -> np.ndarray:
    """Image-level validation scores (n, C), from cached encoder maps when given."""
    if maps is None:
        return predict_landcover(model, images).scores
    model.eval()
    cam = cast(torch.Tensor, model.decode(*maps))
    return torch.sigmoid(image_logits(cam)).cpu().numpy()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
