"""STAC ItemCollection of an export, with the label extension.

Each exported sample is one STAC Item (STAC 1.0.0) whose ``label`` property holds the
class it is filed under; ``label:properties``, ``label:classes``, ``label:type``
(``vector``: the class is a property of the item, not a raster mask) and
``label:tasks`` (``classification``) follow the label extension v1.0.1. Geometry is the
catalog footprint (EPSG:4326) when the sample is georeferenced, else ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import shapely
from shapely.geometry import mapping

STAC_VERSION = "1.0.0"
LABEL_EXTENSION = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
MEDIA_TYPES = {".png": "image/png", ".tif": "image/tiff; application=geotiff"}


def stac_item(
    row: Mapping[str, Any], member: Mapping[str, Any], classes: Sequence[str], href: str | None
) -> dict[str, Any]:
    """One Item: the catalog ``row``, the manifest ``member`` and the dataset's classes."""
    geometry = None
    bbox = None
    if row.get("georeferenced") and row.get("footprint"):
        geometry = mapping(shapely.from_wkb(row["footprint"]))
        bbox = [row["minx"], row["miny"], row["maxx"], row["maxy"]]
    time = row.get("time")
    properties: dict[str, Any] = {
        "datetime": time.isoformat() if time is not None else None,
        "label:description": "scene class of the sample, chosen by a SampleHub query",
        "label:type": "vector",
        "label:properties": ["label"],
        "label:classes": [{"name": "label", "classes": list(classes)}],
        "label:tasks": ["classification"],
        "label": member["label"],
        "samplehub:labels": list(member["labels"]),
        "samplehub:kind": member["kind"],
        "samplehub:score": member["score"],
        "samplehub:reason": member["reason"],
        "samplehub:split": member["split"],
        "samplehub:dataset": row["dataset"],
        "samplehub:relpath": row["relpath"],
        "samplehub:sample_id": int(row["sample_id"]),
        "samplehub:bands": list(row.get("bands") or []),
    }
    if row.get("gsd") is not None:
        properties["gsd"] = row["gsd"]
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [LABEL_EXTENSION],
        "id": f"{row['dataset']}-{row['sample_id']}",
        "geometry": geometry,
        "properties": properties,
        "links": [],
        "assets": {},
    }
    if bbox is not None:
        item["bbox"] = bbox
    if href is not None:
        suffix = href[href.rfind("."):]
        item["assets"]["image"] = {"href": href, "type": MEDIA_TYPES[suffix], "roles": ["data"]}
    return item


def item_collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A STAC ItemCollection (a GeoJSON FeatureCollection of Items)."""
    return {"type": "FeatureCollection", "features": items, "links": []}
