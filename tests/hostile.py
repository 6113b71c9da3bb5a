"""Hostile files for tests: headers that promise absurd sizes in a few bytes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import rasterio


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` RGB (a decompression bomb's)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def sparse_geotiff(path: Path, width: int, height: int) -> Path:
    """A GeoTIFF of a few hundred KB whose header claims ``width`` x ``height``."""
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="uint8", tiled=True, blockxsize=1024, blockysize=1024,
                       sparse_ok=True):
        pass
    return path
