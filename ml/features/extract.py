"""Batched CPU feature extraction: resize, normalise, encode (main paper, section 3.4.2).

Section 4.2 of the paper finds feature extraction to dominate dataset integration time,
so this path is tuned for CPUs: ``torch.inference_mode``, a caller-chosen thread count,
channels-last memory format and bfloat16 autocast when the CPU has native bf16
(AVX512-BF16 or AMX), falling back to fp32. The fp32 path stays available
(``precision="fp32"``) and the quality difference is measured by ``bench/features.py``.

Inputs are 3-channel batches (N, 3, H, W): uint8 in [0, 255] or floats in [0, 1].
Multispectral samples are reduced to three channels by ``samplehub.bands`` first.
Where no bf16 is native, :mod:`ml.features.runtime` runs an ONNX Runtime copy of the model
through the same function.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Precision = Literal["auto", "fp32", "bf16"]
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
DEFAULT_RESOLUTION = 224
DEFAULT_BATCH_SIZE = 32  # measured: 32 beats 64 and 128 on 2 cores (cache-resident activations)


class ArrayLike(Protocol):
    """Anything with a shape, a dtype and slicing: numpy arrays, Zarr arrays, tensors."""

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""

    @property
    def dtype(self) -> Any:
        """Element type."""

    def __getitem__(self, key: slice) -> Any:
        """Rows ``key``."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags listed in ``cpuinfo`` (empty where the file does not exist).

    Args:
        cpuinfo: a Linux ``/proc/cpuinfo``-format file.

    Returns:
        Flags of the first processor entry, e.g. ``{"avx512f", "amx_bf16", ...}``.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def resolve_precision(
    precision: Precision, flags: frozenset[str] | None = None
) -> Literal["fp32", "bf16"]:
    """Resolve ``"auto"`` to ``"bf16"`` on CPUs with native bf16, else ``"fp32"``.

    Args:
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``.
        flags: CPU flags; None reads them with :func:`cpu_flags`.

    Returns:
        ``"fp32"`` or ``"bf16"``; an explicit choice is returned unchanged.

    Raises:
        ValueError: for any other ``precision``.
    """
    if precision == "fp32" or precision == "bf16":
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16'; got {precision!r}")
    flags = cpu_flags() if flags is None else flags
    return "bf16" if flags & BF16_CPU_FLAGS else "fp32"


def preprocess(
    x: np.ndarray | torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    resolution: int = DEFAULT_RESOLUTION,
) -> torch.Tensor:
    """Scale to [0, 1], resize (bilinear, antialiased when shrinking) and normalise a batch.

    Args:
        x: images (N, 3, H, W), uint8 in [0, 255] or floating point in [0, 1].
        mean: per-channel mean of the backbone's input normalisation.
        std: per-channel standard deviation of that normalisation.
        resolution: output height and width.

    Returns:
        float32 tensor (N, 3, resolution, resolution).

    Raises:
        ValueError: on a shape other than (N, 3, H, W) or a dtype other than uint8/float.
    """
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(
            f"expected images of shape (N, 3, H, W); got {tuple(t.shape)}. Reduce "
            "multispectral samples to 3 channels with samplehub.bands first"
        )
    if t.dtype == torch.uint8:
        t = t.float().div_(255.0)
    elif t.is_floating_point():
        t = t.float()
    else:
        raise ValueError(f"expected uint8 or floating-point images; got {t.dtype}")
    if t.shape[-2:] != (resolution, resolution):
        # Antialiasing only changes downsampling, and costs 3x on CPU when upsampling
        # (EuroSAT's 64 px chips go up to 224 px).
        shrinking = t.shape[-1] > resolution or t.shape[-2] > resolution
        t = F.interpolate(
            t, size=(resolution, resolution), mode="bilinear", antialias=shrinking,
            align_corners=False,
        )
    m = torch.tensor(mean, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    return (t - m) / s


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)``, then restore the old value.

    Args:
        num_threads: intra-op threads; None leaves the setting alone.
    """
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1; got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def extract_features(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: ArrayLike,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_threads: int | None = None,
    precision: Precision = "auto",
    channels_last: bool = True,
    resolution: int = DEFAULT_RESOLUTION,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Encode images batch by batch into float32 features.

    Memory stays bounded by ``batch_size``: ``images`` is sliced one batch at a time, so a
    Zarr array is read chunk-wise. The model is put in eval mode and, with
    ``channels_last``, converted to that memory format in place.

    Args:
        model: maps normalised images (N, 3, R, R) to features (N, D), e.g. a
            :class:`ml.features.multiscale.MultiScaleEncoder` or its ONNX Runtime copy
            (:func:`ml.features.runtime.compile_encoder`).
        images: (N, 3, H, W) uint8 or float in [0, 1]; numpy, Zarr or torch.
        batch_size: images per forward pass.
        num_threads: torch intra-op threads during extraction (restored afterwards).
        precision: ``"bf16"`` autocast, ``"fp32"``, or ``"auto"`` (bf16 where native).
        channels_last: use channels-last (NHWC) memory format.
        resolution: input side length R after resizing.
        mean: input normalisation mean; None takes ``model.pretrained_cfg["mean"]``.
        std: input normalisation std; None takes ``model.pretrained_cfg["std"]``.

    Returns:
        float32 array (N, D); rows are L2-normalised if the model normalises.

    Raises:
        ValueError: on a bad shape, dtype, batch size, or missing mean/std.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if mean is None or std is None:
        cfg = getattr(model, "pretrained_cfg", None)
        if not cfg:
            raise ValueError("model has no pretrained_cfg; pass mean= and std= explicitly")
        mean = cfg["mean"] if mean is None else mean
        std = cfg["std"] if std is None else std
    use_bf16 = resolve_precision(precision) == "bf16"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if isinstance(model, nn.Module):
        model.eval().to(memory_format=memory_format)
    n = int(images.shape[0])
    out: list[np.ndarray] = []
    with (
        torch_threads(num_threads),
        torch.inference_mode(),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16),
    ):
        for start in range(0, n, batch_size):
            x = preprocess(images[start : start + batch_size], mean, std, resolution)
            z = model(x.contiguous(memory_format=memory_format))
            out.append(z.float().numpy())
    if not out:
        raise ValueError(f"no images to encode: images has shape {tuple(images.shape)}")
    return np.concatenate(out, axis=0)
