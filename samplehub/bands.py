"""Band harmonization (main paper, section 3.4.2).

Multispectral and SAR samples differ from RGB ones in band count and meaning. The paper
(1) normalizes every band, (2) aligns the visible bands and keeps key non-visible ones
(NIR) through a band-mapping file, and (3) reduces the result to three principal
components so one feature extractor serves every sensor. The band mapping lives in
``conf/band_mapping.yaml``: per sensor, which band name plays which role.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from samplehub.errors import ConfigError, InvalidSampleError

ROLES = ("red", "green", "blue", "nir")
DEFAULT_MAPPING_FILE = Path(__file__).resolve().parents[1] / "conf" / "band_mapping.yaml"


@lru_cache(maxsize=4)
def load_band_mapping(path: str | Path = DEFAULT_MAPPING_FILE) -> dict[str, dict[str, str]]:
    """``{sensor: {role: band name}}`` from a YAML band-mapping file."""
    try:
        mapping = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"band mapping file {path} does not exist") from exc
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping of sensor -> {{role: band}}")
    for sensor, roles in mapping.items():
        unknown = set(roles) - {*ROLES, "swir1", "swir2", "sar_a", "sar_b"}
        if unknown:
            raise ConfigError(f"{path}: sensor {sensor!r} has unknown roles {sorted(unknown)}")
    return mapping


def role_indices(
    band_names: Sequence[str], sensor: str | None, mapping: Mapping[str, Mapping[str, str]]
) -> dict[str, int]:
    """Index of each role's band in ``band_names`` (roles whose band is absent are left out)."""
    names = [b.lower() for b in band_names]
    roles = mapping.get(sensor or "", {}) or mapping.get("default", {})
    found = {
        role: names.index(band.lower()) for role, band in roles.items() if band.lower() in names
    }
    for role in ("red", "green", "blue", "nir"):
        if role not in found and role in names:
            found[role] = names.index(role)
    return found


def normalize_bands(image: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Per-band percentile stretch to [0, 1] (step 1): float32 (C, H, W)."""
    flat = image.reshape(image.shape[0], -1).astype(np.float32)
    lo = np.percentile(flat, low, axis=1)[:, None, None]
    hi = np.percentile(flat, high, axis=1)[:, None, None]
    scale = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((image.astype(np.float32) - lo) / scale, 0.0, 1.0)


def align_bands(
    image: np.ndarray,
    band_names: Sequence[str],
    sensor: str | None,
    mapping: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Select red, green, blue and (if present) NIR in that order (step 2).

    Raises:
        InvalidSampleError: the bands name no visible band the mapping knows.
    """
    mapping = load_band_mapping() if mapping is None else mapping
    idx = role_indices(band_names, sensor, mapping)
    roles = [r for r in ROLES if r in idx]
    if not {"red", "green", "blue"} <= set(roles):
        return image, tuple(band_names)
    return image[[idx[r] for r in roles]], tuple(roles)


def pca_three(image: np.ndarray) -> np.ndarray:
    """Project (C, H, W) onto its first three principal components, scaled to [0, 1] (step 3).

    With three or fewer bands the bands are returned (padded by repetition) unchanged.
    """
    c, h, w = image.shape
    if c <= 3:
        return np.concatenate([image] * (3 // c + 1))[:3] if c < 3 else image
    x = image.reshape(c, -1).T.astype(np.float64)
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    components = vt[:3]
    # Fix each component's sign so the same scene gives the same picture every time.
    components *= np.sign(components.sum(axis=1, keepdims=True) + 1e-12)
    projected = (x @ components.T).T.reshape(3, h, w)
    return normalize_bands(projected, 0.0, 100.0)


def to_three_channels(
    image: np.ndarray, band_names: Sequence[str], sensor: str | None = None
) -> np.ndarray:
    """The paper's harmonization: normalize, align (keep NIR), PCA to 3 -> float32 (3, H, W).

    Plain RGB input skips alignment and PCA (only scaled to [0, 1]).
    """
    if tuple(b.lower() for b in band_names) == ("red", "green", "blue"):
        return image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else image.max() or 1)
    aligned, _ = align_bands(image, band_names, sensor)
    return pca_three(normalize_bands(aligned)).astype(np.float32)


def rgb_composite(
    image: np.ndarray,
    band_names: Sequence[str],
    sensor: str | None = None,
    bands: Sequence[str] | None = None,
    stretch: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """A uint8 (3, H, W) picture of a sample for thumbnails and the review page.

    Args:
        image: (C, H, W) at native dtype.
        band_names: names of the C bands.
        sensor: picks the band mapping; ``None`` uses the ``default`` entry.
        bands: an explicit band triple (e.g. ``("B08", "B04", "B03")`` false colour);
            by default the mapping's red/green/blue, else the first bands.
        stretch: percentiles mapped to 0 and 255 for non-uint8 data.

    Raises:
        InvalidSampleError: a requested band is not among ``band_names``.
    """
    names = [b.lower() for b in band_names]
    if bands is not None:
        missing = [b for b in bands if b.lower() not in names]
        if missing:
            raise InvalidSampleError(
                f"bands {missing} not in this sample's bands {list(band_names)}"
            )
        picked = image[[names.index(b.lower()) for b in bands]]
    else:
        idx = role_indices(band_names, sensor, load_band_mapping())
        if {"red", "green", "blue"} <= set(idx):
            picked = image[[idx["red"], idx["green"], idx["blue"]]]
        else:
            picked = image[[i % image.shape[0] for i in range(3)]]
    if picked.dtype == np.uint8 and bands is None:
        # 8-bit imagery is already display-ready; stretching would change its colours.
        return np.ascontiguousarray(picked)
    return (normalize_bands(picked, *stretch) * 255).round().astype(np.uint8)
