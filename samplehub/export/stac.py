"""STAC Collection of an export, with the label extension, written by pystac.

Layout under the export folder::

    stac/collection.json             the Collection: extent, label summaries, item links
    stac/<item id>/<item id>.json    one Item per exported sample

The catalog is self-contained: every link and asset href is relative, so the export folder
can be moved or archived whole. Each Item (STAC 1.1) is one sample. Its ``label`` property
holds the class it is filed under; ``label:properties``, ``label:classes``, ``label:type``
(``vector``: the class is a property of the item, not a raster mask), ``label:tasks``
(``classification``) and ``label:description`` follow the label extension v1.0.1, and the
Collection summarises them. Geometry and bbox are the catalog footprint (EPSG:4326) when the
sample is georeferenced, else absent. STAC requires a time: ``datetime`` is the acquisition
time, or the ingest time where the source gives none (``samplehub:time`` says which).
The ``image`` asset is the sample's ImageFolder file when that format is exported.
A sample with land-cover statistics (HIR, ``samplehub.landcover``: per-pixel class shares by
ESFormer, trained weakly on image labels) carries them as ``label:overviews``: one overview
with ``property_key`` ``landcover`` whose ``statistics`` name each class and its share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pystac
import shapely
from pystac.extensions.label import (
    LabelClasses,
    LabelExtension,
    LabelOverview,
    LabelStatistics,
    LabelTask,
    LabelType,
)
from shapely.geometry import mapping

COLLECTION_FILE = "stac/collection.json"
LABEL_DESCRIPTION = "scene class of the sample, chosen by a SampleHub query"
MEDIA_TYPES = {".png": pystac.MediaType.PNG, ".tif": pystac.MediaType.GEOTIFF}
WORLD = [-180.0, -90.0, 180.0, 90.0]


def stac_item(
    row: Mapping[str, Any],
    member: Mapping[str, Any],
    classes: Sequence[str],
    image: Path | None,
    landcover: Mapping[str, float] | None = None,
) -> pystac.Item:
    """One Item: the catalog ``row``, the manifest ``member`` and the dataset's classes.

    Args:
        row: the sample's catalog row (footprint, bounds, time, ingest time, bands, gsd).
        member: its manifest row (label, kind, score, reason, split).
        classes: the exported label set, in the spec's order.
        image: the exported image file (an absolute path), or None.
        landcover: the sample's land-cover class shares, written as ``label:overviews``;
            None or empty for none.
    """
    geometry = bbox = None
    if row.get("georeferenced") and row.get("footprint"):
        geometry = mapping(shapely.from_wkb(row["footprint"]))
        bbox = [row["minx"], row["miny"], row["maxx"], row["maxy"]]
    acquired = row.get("time")
    item = pystac.Item(
        id=f"{row['dataset']}-{row['sample_id']}",
        geometry=geometry,
        bbox=bbox,
        datetime=acquired if acquired is not None else row["ingested_at"],
        properties={
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
            "samplehub:time": "acquired" if acquired is not None else "ingested",
        },
    )
    if row.get("gsd") is not None:
        item.common_metadata.gsd = float(row["gsd"])
    LabelExtension.ext(item, add_if_missing=True).apply(
        label_description=LABEL_DESCRIPTION,
        label_type=LabelType.VECTOR,
        label_properties=["label"],
        label_classes=[LabelClasses.create(list(classes), name="label")],
        label_tasks=[LabelTask.CLASSIFICATION],
        label_overviews=[LabelOverview.create(
            property_key="landcover",
            statistics=[LabelStatistics.create(name, share) for name, share in landcover.items()],
        )] if landcover else None,
    )
    if image is not None:
        item.add_asset(
            "image",
            pystac.Asset(href=str(image), media_type=MEDIA_TYPES[image.suffix], roles=["data"]),
        )
    return item


def stac_collection(
    collection_id: str, description: str, items: list[pystac.Item], classes: Sequence[str]
) -> pystac.Collection:
    """A Collection of ``items`` with their extent and the label extension's summaries.

    The spatial extent is the items' bbox union, or the whole world when none is
    georeferenced.
    """
    extent = pystac.Extent.from_items(items)
    if not any(item.bbox for item in items):
        extent.spatial = pystac.SpatialExtent([WORLD])
    collection = pystac.Collection(
        id=collection_id, description=description, extent=extent, license="other"
    )
    summaries = LabelExtension.summaries(collection, add_if_missing=True)
    summaries.label_properties = ["label"]
    summaries.label_classes = [LabelClasses.create(list(classes), name="label")]
    summaries.label_type = [LabelType.VECTOR]
    summaries.label_tasks = [LabelTask.CLASSIFICATION]
    collection.add_items(items)
    return collection


def write_stac(root: Path, collection: pystac.Collection) -> str:
    """Save ``collection`` self-contained under ``root / "stac"``; returns its file, relative."""
    collection.normalize_hrefs(str(root / Path(COLLECTION_FILE).parent))
    collection.make_all_asset_hrefs_relative()
    collection.save(pystac.CatalogType.SELF_CONTAINED)
    return COLLECTION_FILE
