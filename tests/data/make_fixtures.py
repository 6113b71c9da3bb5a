"""Regenerate the tiny, seeded fixture datasets under ``tests/data/``.

Run from the repository root: ``python tests/data/make_fixtures.py``. Every dataset mimics
the layout of a real one in ``../shared/data`` at a fraction of the size (all together well
under 300 KB), so the source tests run the real discovery and reading code offline:

- ``folder_tree/``: folder-per-class JPEGs with one nested level (``water/river``);
- ``multilabel_manifest/``: a UC Merced style multi-label TSV (CRLF) and its images;
- ``bigearthnet/``: one Sentinel-2 L2A patch (12 bands at 10/20/60 m) and one Sentinel-1
  patch (VV, VH), with ``*_labels_metadata.json`` (the S1 one keeps the real ``lly`` typo);
- ``geotiff/``: two 4-band uint8 GeoTIFFs (R, G, B, NIR) in UTM zone 33N.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
SEED = 20240607

UTM33N = CRS.from_epsg(32633)
PATCH_ULX, PATCH_ULY = 404400.0, 5342400.0
PATCH_SIZE_M = 120.0  # real patches are 1,200 m; the fixture keeps the 10/20/60 m ratios
S2_BANDS = {  # band -> pixel size in metres
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20,
    "B07": 20, "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
S2_PATCH = "S2A_MSIL2A_20170613T101031_87_48"
S1_PATCH = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
PATCH_LABELS = ["Non-irrigated arable land", "Pastures"]

FOLDER_TREE = {"farmland": 4, "forest": 4, "water/river": 4}
MANIFEST_LABELS = ["buildings", "cars", "trees", "water"]
MANIFEST_ROWS = {  # image stem -> (class folder, positive labels)
    "residential00": ("residential", ["buildings", "cars", "trees"]),
    "residential01": ("residential", ["buildings"]),
    "river00": ("river", ["trees", "water"]),
}


def write_jpeg(path: Path, rng: np.random.Generator, size: int = 24) -> None:
    """A small random RGB JPEG (smooth, so it compresses to about a kilobyte)."""
    base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    pixels = np.kron(base, np.ones((size // 4, size // 4, 1), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=80)


def write_geotiff(path: Path, bands: np.ndarray, crs: CRS, transform: object) -> None:
    """A (C, H, W) array as a deflate-compressed GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = bands.shape
    with rasterio.open(
        path, "w", driver="GTiff", count=count, height=height, width=width,
        dtype=bands.dtype, crs=crs, transform=transform, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(bands)


def make_folder_tree(root: Path, rng: np.random.Generator) -> None:
    """Three classes of four JPEGs, one of them nested under ``water``."""
    for folder, n in FOLDER_TREE.items():
        for i in range(n):
            write_jpeg(root / folder / f"{folder.rsplit('/', 1)[-1]}{i:02d}.jpg", rng)


def make_manifest(root: Path, rng: np.random.Generator) -> None:
    """A three-row multi-label manifest (tab-separated, CRLF) and its images."""
    lines = ["\t".join(["IMAGE\\LABEL", *MANIFEST_LABELS])]
    for stem, (folder, positives) in MANIFEST_ROWS.items():
        write_jpeg(root / "images" / folder / f"{stem}.jpg", rng)
        flags = ["1" if label in positives else "0" for label in MANIFEST_LABELS]
        lines.append("\t".join([stem, *flags]))
    (root / "manifest.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())


def make_s2_patch(root: Path, rng: np.random.Generator) -> None:
    """One Sentinel-2 L2A patch: 12 uint16 bands at 10/20/60 m plus metadata."""
    folder = root / "S2" / S2_PATCH
    for band, gsd in S2_BANDS.items():
        n = int(PATCH_SIZE_M // gsd)
        pixels = rng.integers(0, 10000, size=(1, n, n), dtype=np.uint16)
        transform = from_origin(PATCH_ULX, PATCH_ULY, gsd, gsd)
        write_geotiff(folder / f"{S2_PATCH}_{band}.tif", pixels, UTM33N, transform)
    metadata = {
        "labels": PATCH_LABELS,
        "coordinates": patch_coordinates("lry"),
        "projection": UTM33N.to_wkt(),
        "tile_source": "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE",
        "acquisition_date": "2017-06-13 10:10:31",
    }
    (folder / f"{S2_PATCH}_labels_metadata.json").write_text(json.dumps(metadata))


def make_s1_patch(root: Path, rng: np.random.Generator) -> None:
    """One Sentinel-1 patch: VV and VH float32 backscatter plus metadata (``lly`` typo)."""
    folder = root / "S1" / S1_PATCH
    transform = from_origin(PATCH_ULX, PATCH_ULY, 10.0, 10.0)
    n = int(PATCH_SIZE_M // 10)
    for band in ("VV", "VH"):
        pixels = rng.normal(-15.0, 3.0, size=(1, n, n)).astype(np.float32)
        write_geotiff(folder / f"{S1_PATCH}_{band}.tif", pixels, UTM33N, transform)
    metadata = {
        "labels": PATCH_LABELS[:1],
        "coordinates": patch_coordinates("lly"),
        "projection": UTM33N.to_wkt(),
        "corresponding_s2_patch": S2_PATCH,
        "acquisition_time": "2017-06-13T16:50:43",
    }
    (folder / f"{S1_PATCH}_labels_metadata.json").write_text(json.dumps(metadata))


def patch_coordinates(bottom_key: str) -> dict[str, float]:
    """The metadata ``coordinates`` block; ``bottom_key`` is ``lry`` (S2) or ``lly`` (S1)."""
    return {
        "ulx": PATCH_ULX,
        "uly": PATCH_ULY,
        "lrx": PATCH_ULX + PATCH_SIZE_M,
        bottom_key: PATCH_ULY - PATCH_SIZE_M,
    }


def make_geotiffs(root: Path, rng: np.random.Generator) -> None:
    """Two 4-band uint8 GeoTIFFs (R, G, B, NIR) at 10 m in UTM zone 33N."""
    for i, name in enumerate(("scene_a.tif", "scene_b.tif")):
        pixels = rng.integers(0, 256, size=(4, 16, 20), dtype=np.uint8)
        transform = from_origin(PATCH_ULX + 1000.0 * i, PATCH_ULY, 10.0, 10.0)
        write_geotiff(root / name, pixels, UTM33N, transform)


def main() -> None:
    """Rewrite every fixture dataset from the fixed seed."""
    rng = np.random.default_rng(SEED)
    makers = {
        "folder_tree": make_folder_tree,
        "multilabel_manifest": make_manifest,
        "bigearthnet": lambda root, r: (make_s2_patch(root, r), make_s1_patch(root, r)),
        "geotiff": make_geotiffs,
    }
    for name, make in makers.items():
        shutil.rmtree(HERE / name, ignore_errors=True)
        make(HERE / name, rng)
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"fixtures written under {HERE} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
