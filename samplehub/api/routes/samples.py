"""GET /samples/{id}, its thumbnail and a server-side RGB composite of any band triple."""

from __future__ import annotations

import io
from typing import Annotated, Any

import numpy as np
import shapely
from fastapi import APIRouter, Depends, Path, Query, Response
from PIL import Image
from shapely.geometry import mapping

from samplehub.api.state import ApiState, get_state
from samplehub.bands import rgb_composite
from samplehub.errors import InvalidSampleError

router = APIRouter(tags=["samples"])
CACHE = {"Cache-Control": "public, max-age=3600"}
# ids are signed 64-bit in the catalog: a larger number is a 422, not a failed lookup
SampleId = Annotated[int, Path(ge=0, le=2**63 - 1, description="a catalog sample id")]


@router.get("/samples/{sample_id}")
def sample(sample_id: SampleId, state: Annotated[ApiState, Depends(get_state)]) -> dict[str, Any]:
    """A sample's catalog row; the footprint as GeoJSON."""
    row = state.repo.catalog.sample(sample_id)
    footprint = row.pop("footprint")
    row["footprint"] = mapping(shapely.from_wkb(footprint)) if footprint else None
    for key in ("time", "ingested_at"):
        row[key] = row[key].isoformat() if row[key] is not None else None
    row["thumbnail"] = f"/samples/{sample_id}/thumbnail.png"
    row["composite"] = f"/samples/{sample_id}/composite.png"
    return row


@router.get("/samples/{sample_id}/thumbnail.png", response_class=Response)
def thumbnail(sample_id: SampleId, state: Annotated[ApiState, Depends(get_state)]) -> Response:
    """The uint8 RGB thumbnail (stored, or made from the image where that is smaller)."""
    row = state.repo.catalog.sample(sample_id)
    sensor = None if row["sensor"] is None else str(row["sensor"])
    pixels = state.repo.store.dataset(str(row["dataset"])).thumb(
        str(row["zarr_array"]), int(row["zarr_index"]), list(row["bands"]), sensor
    )
    return Response(png(pixels), media_type="image/png", headers=CACHE)


@router.get("/samples/{sample_id}/composite.png", response_class=Response)
def composite(
    sample_id: SampleId,
    state: Annotated[ApiState, Depends(get_state)],
    bands: Annotated[str | None, Query(description="band triple, e.g. B08,B04,B03")] = None,
    stretch: Annotated[str, Query(description="low,high percentiles")] = "2,98",
) -> Response:
    """An RGB composite at full resolution: any band triple, percentile stretch."""
    triple = parse_bands(bands)
    low_high = parse_stretch(stretch)
    row, pixels = state.repo.image(sample_id)
    sensor = None if row["sensor"] is None else str(row["sensor"])
    picture = rgb_composite(pixels, list(row["bands"]), sensor, triple, low_high)  # type: ignore[call-overload]
    return Response(png(picture), media_type="image/png", headers=CACHE)


def parse_bands(bands: str | None) -> tuple[str, str, str] | None:
    """``"B08,B04,B03"`` -> a band triple.

    Raises:
        InvalidSampleError: not three comma-separated names.
    """
    if bands is None:
        return None
    names = [b.strip() for b in bands.split(",")]
    if len(names) != 3 or not all(names):
        raise InvalidSampleError(f"bands must be three comma-separated band names, got {bands!r}")
    return names[0], names[1], names[2]


def parse_stretch(stretch: str) -> tuple[float, float]:
    """``"2,98"`` -> (2.0, 98.0).

    Raises:
        InvalidSampleError: not two percentiles with 0 <= low < high <= 100.
    """
    try:
        low, high = (float(v) for v in stretch.split(","))
    except ValueError as exc:
        raise InvalidSampleError(
            f"stretch must be 'low,high' percentiles, got {stretch!r}"
        ) from exc
    if not 0 <= low < high <= 100:
        raise InvalidSampleError(f"stretch needs 0 <= low < high <= 100, got {stretch!r}")
    return low, high


def png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (3, H, W) picture."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).save(buffer, format="PNG")
    return buffer.getvalue()
