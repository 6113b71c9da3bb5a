"""Decoding one image file into a (C, H, W) array plus its georeference.

Shared by every source: JPEG/PNG through Pillow, TIFF/GeoTIFF through rasterio so the
CRS and transform come along. Footprints are reprojected to EPSG:4326.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from samplehub.errors import InvalidSampleError
from samplehub.records import GeoInfo

RGB_BANDS = ("red", "green", "blue")
# Decoded values (width x height x bands) one sample may hold: 16k x 16k RGB fits, while a
# decompression bomb (a few KB of PNG that inflate to gigabytes) or a TIFF header claiming
# absurd dimensions is refused from its header, before anything is decoded.
MAX_DECODED_VALUES = 1 << 30
GEOTIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", *GEOTIFF_SUFFIXES)


@dataclass
class Raster:
    """A decoded image: ``image`` (C, H, W) at native dtype, band names and georeference."""

    image: np.ndarray
    band_names: tuple[str, ...]
    geo: GeoInfo


def checksum(data: bytes) -> str:
    """Content checksum stored in the catalog (BLAKE2b-128, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode_image(data: bytes, name: str) -> Raster:
    """Decode image bytes; ``name`` (the file's URI) picks the decoder and names errors.

    Raises:
        InvalidSampleError: the bytes are empty, truncated or not an image.
    """
    if not data:
        raise InvalidSampleError(f"{name}: file is empty")
    if name.lower().endswith(GEOTIFF_SUFFIXES):
        return decode_geotiff(data, name)
    return decode_pillow(data, name)


def check_decoded_size(width: int, height: int, bands: int, name: str) -> None:
    """Refuse an image whose header promises more than ``MAX_DECODED_VALUES`` values.

    Raises:
        InvalidSampleError: naming the file and the size it claims.
    """
    if width * height * bands > MAX_DECODED_VALUES:
        raise InvalidSampleError(
            f"{name}: {width} x {height} pixels x {bands} bands is over the decode limit of "
            f"{MAX_DECODED_VALUES:,} values (a decompression bomb or an absurd size); "
            "not decoded")


def decode_pillow(data: bytes, name: str) -> Raster:
    """Decode JPEG/PNG/BMP bytes with Pillow into (C, H, W) uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            check_decoded_size(im.width, im.height, len(im.getbands()), name)
            im.load()
            array = np.asarray(im if im.mode in ("RGB", "L", "RGBA") else im.convert("RGB"))
    except InvalidSampleError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as exc:
        raise InvalidSampleError(f"{name}: cannot decode image ({exc})") from exc
    if array.ndim == 2:
        return Raster(array[None], ("gray",), GeoInfo())
    array = array[..., :3] if array.shape[2] == 4 else array
    return Raster(np.ascontiguousarray(array.transpose(2, 0, 1)), RGB_BANDS, GeoInfo())


def decode_geotiff(data: bytes, name: str) -> Raster:
    """Decode (Geo)TIFF bytes with rasterio; band names from the band descriptions."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.MemoryFile(data) as memfile, memfile.open() as ds:
            check_decoded_size(ds.width, ds.height, ds.count, name)
            image = ds.read()
            descriptions = tuple(d or f"band{i + 1}" for i, d in enumerate(ds.descriptions))
            geo = geo_from_dataset(ds)
    except InvalidSampleError:
        raise
    except (RasterioIOError, ValueError) as exc:
        raise InvalidSampleError(f"{name}: cannot decode GeoTIFF ({exc})") from exc
    return Raster(image, descriptions, geo)


def geo_from_dataset(ds: object) -> GeoInfo:
    """Bounding box, footprint (EPSG:4326) and GSD of an open rasterio dataset."""
    crs = getattr(ds, "crs", None)
    if crs is None:
        return GeoInfo()
    left, bottom, right, top = ds.bounds  # type: ignore[attr-defined]
    gsd = float(abs(ds.transform.a)) if crs.is_projected else None  # type: ignore[attr-defined]
    return footprint_geo(left, bottom, right, top, crs.to_wkt(), gsd=gsd)


def footprint_geo(
    left: float, bottom: float, right: float, top: float, crs: str, gsd: float | None = None
) -> GeoInfo:
    """Reproject a box given in ``crs`` to an EPSG:4326 footprint polygon and bbox."""
    from pyproj import CRS, Transformer
    from shapely.geometry import Polygon

    source = CRS.from_user_input(crs)
    transformer = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
    # Densify the edges: a reprojected rectangle is not a rectangle.
    n = 8
    xs = [left + (right - left) * i / n for i in range(n)]
    ys = [bottom + (top - bottom) * i / n for i in range(n)]
    ring = (
        [(x, bottom) for x in xs]
        + [(right, y) for y in ys]
        + [(x, top) for x in reversed([*xs[1:], right])]
        + [(left, y) for y in reversed([*ys[1:], top])]
    )
    lon, lat = transformer.transform([p[0] for p in ring], [p[1] for p in ring])
    polygon = Polygon(zip(lon, lat, strict=True))
    minx, miny, maxx, maxy = polygon.bounds
    return GeoInfo(
        bbox=(minx, miny, maxx, maxy),
        footprint_wkb=polygon.wkb,
        crs=source.to_string(),
        gsd=gsd,
    )
