"""Batched extraction: input handling, precision choice, bf16 agreement with fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml.features.extract import (
    cpu_flags,
    extract_features,
    preprocess,
    resolve_precision,
)
from ml.features.multiscale import MultiScaleEncoder

RES = 96  # small inputs keep the tests fast; the bench measures 224 px
BF16_COSINE_BAR = 0.99


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Smooth random uint8 images (N, 3, 48, 48): upsampled noise, a little image-like."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(6, 3, 6, 6)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(small), size=48, mode="bilinear")
    return big.round().clamp(0, 255).to(torch.uint8).numpy()


def test_cpu_flags_parse_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_resolve_precision() -> None:
    assert resolve_precision("auto", frozenset({"avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", frozenset({"amx_bf16", "avx2"})) == "bf16"
    assert resolve_precision("auto", frozenset({"avx2", "avx512f"})) == "fp32"
    assert resolve_precision("fp32", frozenset({"amx_bf16"})) == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16")  # type: ignore[arg-type]


def test_preprocess_scales_resizes_and_normalises(images: np.ndarray) -> None:
    x = preprocess(images, mean=(0.5,) * 3, std=(0.5,) * 3, resolution=RES)
    assert x.shape == (6, 3, RES, RES) and x.dtype == torch.float32
    assert -1.0 - 1e-6 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6
    as_float = preprocess(images.astype(np.float32) / 255.0, (0.5,) * 3, (0.5,) * 3, RES)
    torch.testing.assert_close(x, as_float)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        preprocess(np.zeros((2, 4, 8, 8), np.uint8), (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match="uint8 or floating"):
        preprocess(np.zeros((2, 3, 8, 8), np.int32), (0.5,) * 3, (0.5,) * 3)


def test_extraction_is_batch_invariant_and_restores_threads(
    encoder: MultiScaleEncoder, images: np.ndarray
) -> None:
    threads = torch.get_num_threads()
    one = extract_features(
        encoder, images, batch_size=6, precision="fp32", resolution=RES, num_threads=1
    )
    assert torch.get_num_threads() == threads
    split = extract_features(encoder, images, batch_size=4, precision="fp32", resolution=RES)
    assert one.shape == (6, 128) and one.dtype == np.float32
    np.testing.assert_allclose(one, split, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    assert np.abs(one[0] - one[1]).max() > 1e-3  # different images, different features


def test_channels_last_matches_contiguous(encoder: MultiScaleEncoder, images: np.ndarray) -> None:
    cl = extract_features(encoder, images, precision="fp32", resolution=RES, channels_last=True)
    nchw = extract_features(encoder, images, precision="fp32", resolution=RES, channels_last=False)
    np.testing.assert_allclose(cl, nchw, atol=1e-4)


def test_bf16_agrees_with_fp32(encoder: MultiScaleEncoder, images: np.ndarray) -> None:
    fp32 = extract_features(encoder, images, precision="fp32", resolution=RES)
    bf16 = extract_features(encoder, images, precision="bf16", resolution=RES)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(axis=1)
    assert cosine.min() >= BF16_COSINE_BAR


def test_bad_arguments(encoder: MultiScaleEncoder, images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(encoder, images, batch_size=0)
    with pytest.raises(ValueError, match="num_threads"):
        extract_features(encoder, images, num_threads=0)
    with pytest.raises(ValueError, match="pretrained_cfg"):
        extract_features(torch.nn.Identity(), images)
