"""ONNX Runtime copy of the encoder: same features as PyTorch, chosen only where fp32 runs."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features import extract as extract_module
from ml.features.extract import extract_features
from ml.features.multiscale import MultiScaleEncoder
from ml.features.runtime import OnnxEncoder, compile_encoder, resolve_runtime

RES = 96


def test_resolve_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_runtime("auto", "auto") == "onnx"
    assert resolve_runtime("torch", "fp32") == "torch"
    assert resolve_runtime("onnx", "fp32") == "onnx"
    monkeypatch.setattr(extract_module, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert resolve_runtime("auto", "auto") == "torch"  # native bf16 stays on PyTorch
    with pytest.raises(ValueError, match="fp32 only"):
        resolve_runtime("onnx", "bf16")
    with pytest.raises(ValueError, match="runtime must be"):
        resolve_runtime("tensorrt", "fp32")  # type: ignore[arg-type]


def test_onnx_copy_gives_the_torch_features(encoder: MultiScaleEncoder) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 3, 64, 64), dtype=np.uint8)
    copy = compile_encoder(encoder, "onnx", precision="fp32", resolution=RES, num_threads=1)
    assert isinstance(copy, OnnxEncoder)
    assert copy.pretrained_cfg["mean"] == encoder.pretrained_cfg["mean"]
    want = extract_features(encoder, images, precision="fp32", resolution=RES)
    # batch_size 2 leaves a short last batch: the exported batch axis is dynamic
    got = extract_features(copy, images, batch_size=2, precision="fp32", resolution=RES)
    assert got.shape == want.shape == (5, encoder.dim)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert compile_encoder(encoder, "torch", precision="fp32") is encoder
