"""Lossless WebP as a Zarr v3 array-to-bytes codec, for uint8 RGB(A) image chunks.

A chunk of the store is one sample. General-purpose compressors see its pixels as a byte
stream; an image codec predicts each pixel from its neighbours in two dimensions. On
EuroSAT's decoded JPEGs, lossless WebP stores 1.41x the JPEG's bytes where zstd stores
2.3x, and a one-sample read takes no longer than with zstd (``bench/store_layout.py``'s
codec table). Lossless WebP (libwebp, through imagecodecs) encodes 8-bit RGB or RGBA only, so
:func:`~samplehub.store.zarr_store.chunk_codecs` picks it for those arrays alone.

The chunk it receives is ``(1, H, W, C)``: the array's ``(1, C, H, W)`` after the transpose
codec that precedes it. Its name in array metadata is :data:`NAME`; a reader needs this
module imported (``samplehub.store`` imports it) to decode such arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.common import JSON
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

NAME = "samplehub.webp_lossless"


@dataclass(frozen=True)
class WebpLossless(ArrayBytesCodec):
    """Lossless WebP of one ``(1, H, W, C)`` uint8 chunk, C being 3 or 4.

    Args:
        level: libwebp's effort, 0 to 100: higher takes longer for fewer bytes.
        method: libwebp's method, 0 to 6: likewise.
    """

    level: int = 25
    method: int = 1
    is_fixed_size = False

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        """The codec an array's metadata names."""
        _, configuration = parse_named_configuration(data, NAME, require_configuration=False)
        return cls(**(configuration or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        """The codec as array metadata names it."""
        return {"name": NAME, "configuration": {"level": self.level, "method": self.method}}

    def validate(self, *, shape: tuple[int, ...],
                 dtype: ZDType[TBaseDType, TBaseScalar], chunk_grid: ChunkGrid) -> None:
        """Refuse an array that is not uint8 when it is created."""
        if dtype.to_native_dtype() != np.dtype("uint8"):
            raise ValueError(f"{NAME} encodes uint8 images, not {dtype.to_native_dtype()}")

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        import imagecodecs

        pixels: Any = np.ascontiguousarray(imagecodecs.webp_decode(chunk_bytes.to_bytes()))
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(pixels.reshape(chunk_spec.shape))

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        import imagecodecs

        pixels: Any = chunk_array.as_numpy_array()
        if pixels.ndim != 4 or pixels.shape[0] != 1 or pixels.shape[-1] not in (3, 4):
            raise ValueError(f"{NAME} encodes (1, H, W, 3 or 4) chunks, not {pixels.shape}")
        encoded = imagecodecs.webp_encode(np.ascontiguousarray(pixels[0]), level=self.level,
                                          lossless=True, method=self.method)
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec
                             ) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Not known before encoding: WebP's size follows the picture."""
        raise NotImplementedError


register_codec(NAME, WebpLossless)
