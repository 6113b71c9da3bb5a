"""Sources on the real datasets in ``../shared/data`` (skipped when absent).

Local disk holds the full datasets; the loopback S3 server holds a small subset in the same
layout (see ``real_bucket`` in conftest: UC Merced 2 classes x 5 images, the full manifest,
one S2 and one S1 BigEarthNet patch, the RGBN GeoTIFFs).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from samplehub.errors import ManifestRowError
from samplehub.sources import SourceSpec, open_source
from samplehub.sources.bigearthnet import BAND_LAYOUTS
from samplehub.sources.multilabel_manifest import MISSING_MARK

if TYPE_CHECKING:
    from conftest import Entries, Where

MANIFEST = ("ucmerced_multilabel", "LandUse_Multilabeled.txt")
UCMERCED = ("ucmerced", "Images")
# rgbn.tif: UTM 18N (792988, 2048367)-(795563, 2050382), min/max of its corners in lon/lat.
RGBN_BBOX = (-72.225232, 18.505145, -72.200570, 18.523694)


def test_ucmerced_has_2100_images_in_21_labels(real_where: Where, entries: Entries) -> None:
    source = real_where.open("ucmerced", *UCMERCED)
    found = entries(source)
    tree = source.label_tree()
    if real_where.name == "local":
        assert (len(found), len(tree.leaves)) == (2100, 21)
        assert set(Counter(e.labels for e in found).values()) == {100}
    else:
        assert (len(found), len(tree.leaves)) == (10, 2)
    record = source.read(found[0])
    assert record.shape[0] == 3 and record.image.dtype == np.uint8


def test_eurosat_discovery_finds_27000_images_in_10_labels(
    shared_data: Path, entries: Entries
) -> None:
    source = open_source(SourceSpec("eurosat", str(shared_data / "eurosat_rgb")))
    counts = Counter(e.labels[0] for e in entries(source))
    assert source.kind == "folder_tree"
    assert (sum(counts.values()), len(counts)) == (27000, 10)
    assert (counts["HerbaceousVegetation"], counts["Highway"]) == (2999, 2501)


def test_multilabel_manifest_joins_its_rows_to_ucmerced(
    real_where: Where, entries: Entries
) -> None:
    images = real_where.uri(*UCMERCED)
    source = real_where.open("ucm_ml", *MANIFEST, options={"images": images})
    found = entries(source)
    joined = [e for e in found if MISSING_MARK not in e.uri]
    assert source.kind == "multilabel_manifest"
    assert len(found) == 2100 and len(source.label_tree().nodes()) == 17
    first = joined[0]
    assert first.relpath == "agricultural/agricultural00.jpg"
    assert first.labels == ("field", "trees")
    assert source.read(first).shape == (3, 256, 256)
    if real_where.name == "local":
        assert len(joined) == 2100
    else:
        assert len(joined) == 10
        missing = next(e for e in found if MISSING_MARK in e.uri)
        with pytest.raises(ManifestRowError, match=rf"{MANIFEST[1]}, line \d+: image '"):
            source.read(missing)


def test_bigearthnet_s2_patches_are_12_band_uint16_with_footprints(
    real_where: Where, entries: Entries
) -> None:
    source = real_where.open("ben", "bigearthnet_examples")
    found = entries(source)
    assert source.kind == "bigearthnet"
    assert len(found) == (12 if real_where.name == "local" else 2)
    records = [source.read(e) for e in found]
    s2 = [r for r in records if r.sensor == "sentinel-2"]
    assert len(s2) == len(found) // 2
    for record in s2:
        assert record.shape == (12, 120, 120) and record.image.dtype == np.uint16
        assert record.band_names == BAND_LAYOUTS["sentinel-2"]
        west, south, east, north = record.geo.bbox
        assert 0.01 < east - west < 0.05 and 0.005 < north - south < 0.02  # 1.2 km in Europe
        assert record.geo.footprint_wkb and record.geo.time is not None
    s1 = next(r for r in records if r.sensor == "sentinel-1")
    assert s1.shape == (2, 120, 120) and s1.image.dtype == np.float32


def test_rgbn_geotiffs_have_4_bands_and_a_4326_bbox(real_where: Where, entries: Entries) -> None:
    bands = ["red", "green", "blue", "nir"]
    source = real_where.open("rgbn", "multispectral_rgbn", options={"bands": bands})
    found = {e.relpath: e for e in entries(source)}
    assert sorted(found) == ["rgbn.tif", "rgbn_suba.tif", "rgbn_subb.tif"]
    record = source.read(found["rgbn.tif"])
    assert record.shape == (4, 403, 515) and record.image.dtype == np.uint8
    assert record.band_names == tuple(bands)
    assert record.geo.bbox == pytest.approx(RGBN_BBOX, abs=1e-5)
    assert record.geo.crs == "EPSG:32618"
