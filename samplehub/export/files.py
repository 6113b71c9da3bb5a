"""Sample files of an ImageFolder export: PNG for 8-bit RGB/grey, GeoTIFF otherwise.

8-bit one- and three-band samples become PNG, which every image loader reads;
multispectral, SAR and non-8-bit samples keep their native bands and dtype in a GeoTIFF
whose band descriptions are the band names. A georeferenced sample's GeoTIFF carries
the catalog's EPSG:4326 bounding box as its georeference (the footprint's bounds, so a
sample that was rotated against north in its source CRS is approximated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A label as a folder name: runs of other characters become ``_``."""
    cleaned = UNSAFE.sub("_", name).strip("._")
    return cleaned or "_"


def file_suffix(image: np.ndarray) -> str:
    """``.png`` for uint8 (1 or 3, H, W) images, ``.tif`` for everything else."""
    return ".png" if image.dtype == np.uint8 and image.shape[0] in (1, 3) else ".tif"


def write_sample(path: Path, image: np.ndarray, row: Mapping[str, Any]) -> None:
    """Write one (C, H, W) image to ``path`` (its suffix picks PNG or GeoTIFF)."""
    if path.suffix == ".png":
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    else:
        write_geotiff(path, image, row)


def write_geotiff(path: Path, image: np.ndarray, row: Mapping[str, Any]) -> None:
    """A GeoTIFF with native dtype and bands, georeferenced when the catalog row is."""
    import rasterio
    from affine import Affine

    c, h, w = image.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": w, "height": h, "count": c, "dtype": image.dtype.name,
    }
    if row.get("georeferenced") and row.get("minx") is not None:
        profile["crs"] = "EPSG:4326"
        minx, miny, maxx, maxy = (row[k] for k in ("minx", "miny", "maxx", "maxy"))
        profile["transform"] = Affine((maxx - minx) / w, 0.0, minx, 0.0, -(maxy - miny) / h, maxy)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image)
        for i, band in enumerate(row.get("bands") or [], start=1):
            dst.set_band_description(i, str(band))
