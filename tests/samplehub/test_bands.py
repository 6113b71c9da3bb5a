"""Band harmonization (main paper 3.4.2): normalize, align RGB+NIR, PCA to three."""

import numpy as np
import pytest

from samplehub.bands import (
    align_bands,
    normalize_bands,
    pca_three,
    rgb_composite,
    to_three_channels,
)
from samplehub.errors import InvalidSampleError

S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def s2_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10000, (12, 16, 16)).astype(np.uint16)


def test_normalize_maps_each_band_to_unit_range() -> None:
    image = np.stack([np.linspace(0, 10, 64), np.linspace(100, 5000, 64)]).reshape(2, 8, 8)
    out = normalize_bands(image, 0, 100)
    assert out.dtype == np.float32
    assert np.allclose(out.min(axis=(1, 2)), 0) and np.allclose(out.max(axis=(1, 2)), 1)


def test_align_picks_red_green_blue_nir_of_sentinel2() -> None:
    image = s2_image()
    aligned, names = align_bands(image, S2, "sentinel-2")
    assert names == ("red", "green", "blue", "nir")
    assert np.array_equal(aligned[0], image[S2.index("B04")])
    assert np.array_equal(aligned[3], image[S2.index("B08")])


def test_first_principal_component_carries_the_shared_signal() -> None:
    rng = np.random.default_rng(2)
    signal = rng.normal(size=(1, 32, 32))
    image = np.concatenate([signal * w for w in (1, 2, 3, 4)]) + rng.normal(0, 0.01, (4, 32, 32))
    out = pca_three(image)
    assert out.shape == (3, 32, 32)
    first = np.corrcoef(out[0].ravel(), signal.ravel())[0, 1]
    third = np.corrcoef(out[2].ravel(), signal.ravel())[0, 1]
    assert abs(first) > 0.99 > abs(third)


def test_to_three_channels_is_deterministic_for_multispectral() -> None:
    image = s2_image(3)
    first = to_three_channels(image, S2, "sentinel-2")
    assert first.shape == (3, 16, 16) and first.dtype == np.float32
    assert np.array_equal(first, to_three_channels(image, S2, "sentinel-2"))


def test_composite_uses_mapping_and_explicit_triples() -> None:
    image = s2_image(4)
    natural = rgb_composite(image, S2, "sentinel-2")
    false_colour = rgb_composite(image, S2, "sentinel-2", bands=("B08", "B04", "B03"))
    assert natural.dtype == np.uint8 and natural.shape == (3, 16, 16)
    assert not np.array_equal(natural, false_colour)
    with pytest.raises(InvalidSampleError, match="B99"):
        rgb_composite(image, S2, "sentinel-2", bands=("B99", "B04", "B03"))


def test_uint8_rgb_is_left_as_is() -> None:
    image = np.random.default_rng(5).integers(0, 255, (3, 8, 8)).astype(np.uint8)
    assert np.array_equal(rgb_composite(image, ("red", "green", "blue")), image)
