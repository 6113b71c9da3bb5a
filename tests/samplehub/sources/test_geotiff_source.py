"""GeoTIFF source on the fixture RGBN scenes (local disk and loopback S3)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from samplehub.errors import ConfigError, InvalidSampleError
from samplehub.sources import SourceSpec, open_source

if TYPE_CHECKING:
    from conftest import Entries, Where

RGBN = ["red", "green", "blue", "nir"]
# scene_a: UTM 33N (404400, 5342240)-(404600, 5342400); min/max over its four corners in lon/lat.
SCENE_A_BBOX = (13.712737, 48.226174, 13.715465, 48.227643)


def test_every_tif_is_one_unlabelled_sample(where: Where, entries: Entries) -> None:
    source = where.open("tifs", "geotiff")
    found = entries(source)
    assert source.kind == "geotiff"
    assert [(e.relpath, e.labels) for e in found] == [("scene_a.tif", ()), ("scene_b.tif", ())]
    assert source.label_tree().nodes() == []


def test_record_has_bands_from_options_and_a_4326_footprint(where: Where, entries: Entries) -> None:
    source = where.open("tifs", "geotiff", options={"bands": RGBN})
    record = source.read(entries(source)[0])
    assert record.shape == (4, 16, 20)
    assert record.image.dtype == np.uint8
    assert record.band_names == tuple(RGBN)
    assert record.geo.bbox == pytest.approx(SCENE_A_BBOX, abs=1e-5)
    assert record.geo.crs == "EPSG:32633"
    assert record.geo.gsd == pytest.approx(10.0)


def test_band_names_default_to_the_descriptions(where: Where, entries: Entries) -> None:
    source = where.open("tifs", "geotiff")
    assert source.read(entries(source)[1]).band_names == ("band1", "band2", "band3", "band4")


def test_a_single_file_is_a_dataset_of_one(where: Where, entries: Entries) -> None:
    source = where.open("one", "geotiff", "scene_b.tif", options={"label": "city"})
    (entry,) = entries(source)
    assert entry.relpath == "scene_b.tif" and entry.labels == ("city",)
    assert (
        source.label_tree().to_json() == '{"nodes": [{"name": "city", "parent": null, "count": 1}]}'
    )


def test_a_geotiff_without_georeference_has_empty_geo(tmp_path: Path, entries: Entries) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            tmp_path / "plain.tif", "w", driver="GTiff", count=1, width=5, height=4, dtype="uint16"
        ) as ds:
            ds.write(np.arange(20, dtype=np.uint16).reshape(1, 4, 5))
        source = open_source(SourceSpec("plain", str(tmp_path)))
        record = source.read(entries(source)[0])
    assert record.shape == (1, 4, 5)
    assert record.geo.bbox is None and record.geo.footprint_wkb is None


def test_band_names_that_do_not_match_the_band_count_name_the_file(
    fixture_copy: Path, entries: Entries
) -> None:
    spec = SourceSpec("tifs", str(fixture_copy / "geotiff"), options={"bands": RGBN[:3]})
    source = open_source(spec)
    with pytest.raises(InvalidSampleError, match=r"scene_a\.tif: has 4 bands but options\.bands"):
        source.read(entries(source)[0])


def test_bands_given_as_a_string_is_a_config_error_at_open(fixtures: Path) -> None:
    spec = SourceSpec("t", str(fixtures / "geotiff"), options={"bands": "rgbn"})
    with pytest.raises(ConfigError, match=r"source 't': options\.bands must be a list"):
        open_source(spec)


def test_a_non_tiff_with_a_tif_suffix_names_the_file(fixture_copy: Path, entries: Entries) -> None:
    bad = fixture_copy / "geotiff" / "scene_b.tif"
    bad.write_bytes(b"GIF89a not a tiff")
    source = open_source(SourceSpec("tifs", str(fixture_copy / "geotiff")))
    with pytest.raises(InvalidSampleError, match=rf"{bad}: cannot decode GeoTIFF"):
        source.read(entries(source)[1])
