"""Where the encoder runs: PyTorch, or an ONNX Runtime copy of it (main paper, section 4.2).

Section 4.2 of the paper finds feature extraction to dominate dataset integration time. On a
CPU without native bf16, PyTorch's eager fp32 EfficientNet spends much of its time between
operators; ONNX Runtime runs the same graph with fused convolutions and activations at about
twice the images per second on 2 cores (``bench/features.py`` records both). The copy is
exported from the loaded model, weights included, so it computes the same features (fp32,
differences of order 1e-7). On a CPU with native bf16, PyTorch's bf16 autocast stays the
fastest path, so ``"auto"`` picks ONNX Runtime only where the precision resolves to fp32.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from ml.features.extract import DEFAULT_RESOLUTION, Precision, resolve_precision

Runtime = Literal["auto", "torch", "onnx"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnx")
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` (the exporter's dependency) import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: Runtime, precision: Precision) -> Literal["torch", "onnx"]:
    """Resolve ``"auto"``: ONNX Runtime where the precision is fp32 and it is installed.

    Args:
        runtime: ``"auto"``, ``"torch"`` or ``"onnx"``.
        precision: the extraction precision (``"auto"`` resolves by CPU flags).

    Returns:
        ``"torch"`` or ``"onnx"``.

    Raises:
        ValueError: for an unknown runtime, or ``"onnx"`` with bf16 (ONNX Runtime's CPU
            provider has no bf16 convolutions).
        ImportError: for ``"onnx"`` when onnxruntime is not installed.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    fp32 = resolve_precision(precision) == "fp32"
    if runtime == "onnx":
        if not fp32:
            raise ValueError("runtime 'onnx' runs fp32 only; set precision: fp32 or runtime: torch")
        if not onnxruntime_available():
            raise ImportError(
                "runtime 'onnx' needs onnxruntime and onnx: pip install onnxruntime onnx"
            )
        return "onnx"
    if runtime == "auto" and fp32 and onnxruntime_available():
        return "onnx"
    return "torch"


class OnnxEncoder:
    """An ONNX Runtime session running an exported copy of a torch encoder.

    The copy is exported once, in memory, with a dynamic batch axis, so the last short batch
    of a dataset needs no padding.

    Args:
        model: the torch encoder (eval mode is set); its ``pretrained_cfg`` is kept.
        resolution: the input side length R the copy is traced at.
        num_threads: ONNX Runtime intra-op threads; None lets it use one per core.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        resolution: int = DEFAULT_RESOLUTION,
        num_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        model.eval().to(memory_format=torch.contiguous_format)
        self.pretrained_cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", {}) or {})
        example = torch.zeros(2, 3, resolution, resolution)
        buffer = io.BytesIO()
        # The TorchScript exporter is deprecated in favour of torch.export, but exports this
        # model in ~3 s against ~18 s, a cost every run process pays once.
        # It writes to a file-like object; torch annotates ``f`` as a path only.
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                buffer,  # type: ignore[arg-type]
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "n"}, "features": {0: "n"}}, dynamo=False,
            )
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, D) of the normalised batch ``x`` (N, 3, R, R)."""
        images = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (features,) = self.session.run(["features"], {"images": images})
        return torch.from_numpy(features)


def compile_encoder(
    model: ModuleT,
    runtime: Runtime = "auto",
    *,
    precision: Precision = "auto",
    resolution: int = DEFAULT_RESOLUTION,
    num_threads: int | None = None,
) -> ModuleT | OnnxEncoder:
    """The encoder to extract with: ``model`` itself, or its ONNX Runtime copy.

    Args:
        model: the torch encoder.
        runtime: see :func:`resolve_runtime`.
        precision: the extraction precision.
        resolution: input side length the images are resized to.
        num_threads: intra-op threads; None leaves the runtime's default.

    Returns:
        Something :func:`ml.features.extract.extract_features` encodes with.
    """
    if resolve_runtime(runtime, precision) == "onnx":
        return OnnxEncoder(model, resolution=resolution, num_threads=num_threads)
    return model
