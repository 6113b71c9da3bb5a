"""BigEarthNet source on the fixture S2 and S1 patches (local disk and loopback S3)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import rasterio
from shapely import wkb

from samplehub.errors import InvalidSampleError
from samplehub.records import FileEntry
from samplehub.sources import Source, SourceSpec, open_source
from samplehub.sources.bigearthnet import BAND_LAYOUTS

if TYPE_CHECKING:
    from conftest import Entries, Where

S2 = "S2/S2A_MSIL2A_20170613T101031_87_48"
S1 = "S1/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
# The fixture patch's 120 m box at UTM 33N (404400, 5342280)-(404520, 5342400), in lon/lat.
EXPECTED_BBOX = (13.712737, 48.226534, 13.714379, 48.227631)


def records_by_relpath(where: Where, entries: Entries) -> tuple[Source, dict[str, FileEntry]]:
    source = where.open("ben", "bigearthnet")
    return source, {e.relpath: e for e in entries(source)}


def test_patches_are_found_at_any_depth_with_their_labels(where: Where, entries: Entries) -> None:
    source, found = records_by_relpath(where, entries)
    assert source.kind == "bigearthnet"
    assert sorted(found) == [S1, S2]
    assert found[S2].labels == ("Non-irrigated arable land", "Pastures")
    assert found[S1].labels == ("Non-irrigated arable land",)
    assert found[S2].uri == where.uri("bigearthnet", S2)
    assert len(found[S2].files) == 13


def test_label_tree_is_flat_with_patch_counts(where: Where) -> None:
    tree = where.open("ben", "bigearthnet").label_tree()
    assert set(tree.parents.values()) == {None}
    assert dict(tree.counts) == {"Non-irrigated arable land": 2, "Pastures": 1}


def test_s2_patch_is_stacked_on_the_10m_grid(
    where: Where, entries: Entries, fixtures: Path
) -> None:
    source, found = records_by_relpath(where, entries)
    record = source.read(found[S2])
    assert record.shape == (12, 12, 12)
    assert record.image.dtype == np.uint16
    assert record.band_names == BAND_LAYOUTS["sentinel-2"]
    assert record.sensor == "sentinel-2"
    patch = fixtures / "bigearthnet" / S2
    with rasterio.open(next(patch.glob("*_B01.tif"))) as ds:
        b01 = ds.read(1)  # 60 m: 2 x 2 pixels, each becomes a 6 x 6 block
    assert np.array_equal(record.image[0], np.kron(b01, np.ones((6, 6), dtype=np.uint16)))
    with rasterio.open(next(patch.glob("*_B02.tif"))) as ds:
        assert np.array_equal(record.image[1], ds.read(1))


def test_s2_footprint_and_time_come_from_the_metadata(where: Where, entries: Entries) -> None:
    source, found = records_by_relpath(where, entries)
    geo = source.read(found[S2]).geo
    assert geo.bbox == pytest.approx(EXPECTED_BBOX, abs=1e-5)
    assert wkb.loads(geo.footprint_wkb).bounds == pytest.approx(geo.bbox)
    assert geo.crs == "EPSG:32633"
    assert geo.gsd == pytest.approx(10.0)
    assert geo.time == datetime(2017, 6, 13, 10, 10, 31, tzinfo=UTC)


def test_s1_patch_reads_vv_vh_despite_the_lly_typo(where: Where, entries: Entries) -> None:
    source, found = records_by_relpath(where, entries)
    record = source.read(found[S1])
    assert record.shape == (2, 12, 12)
    assert record.image.dtype == np.float32
    assert record.band_names == ("VV", "VH")
    assert record.sensor == "sentinel-1"
    assert record.geo.bbox == pytest.approx(EXPECTED_BBOX, abs=1e-5)
    assert record.geo.time == datetime(2017, 6, 13, 16, 50, 43, tzinfo=UTC)


def open_copy(root: Path) -> Source:
    return open_source(SourceSpec("ben", str(root / "bigearthnet"), kind="bigearthnet"))


def test_a_missing_band_file_is_an_unknown_layout(fixture_copy: Path, entries: Entries) -> None:
    patch = fixture_copy / "bigearthnet" / S2
    next(patch.glob("*_B05.tif")).unlink()
    source = open_copy(fixture_copy)
    entry = next(e for e in entries(source) if e.relpath == S2)
    with pytest.raises(InvalidSampleError, match="unknown band layout") as info:
        source.read(entry)
    message = str(info.value)
    assert str(patch) in message and "missing ['B05']" in message and "unexpected []" in message


def test_an_extra_band_file_is_an_unknown_layout(fixture_copy: Path, entries: Entries) -> None:
    patch = fixture_copy / "bigearthnet" / S1
    vv = next(patch.glob("*_VV.tif"))
    vv.with_name(vv.name.replace("_VV", "_HH")).write_bytes(vv.read_bytes())
    source = open_copy(fixture_copy)
    entry = next(e for e in entries(source) if e.relpath == S1)
    with pytest.raises(InvalidSampleError, match=r"unexpected \['HH'\]") as info:
        source.read(entry)
    assert str(patch) in str(info.value)


def test_a_corrupt_band_names_the_band_file(fixture_copy: Path, entries: Entries) -> None:
    band = next((fixture_copy / "bigearthnet" / S2).glob("*_B11.tif"))
    band.write_bytes(band.read_bytes()[:100])
    source = open_copy(fixture_copy)
    entry = next(e for e in entries(source) if e.relpath == S2)
    with pytest.raises(InvalidSampleError, match=band.name):
        source.read(entry)


def test_broken_metadata_is_quarantined_at_read_not_at_discovery(
    fixture_copy: Path, entries: Entries
) -> None:
    metadata = next((fixture_copy / "bigearthnet" / S1).glob("*_labels_metadata.json"))
    metadata.write_text('{"labels": ["Pastures"], "coordinates": {"ulx": 1}')
    source = open_copy(fixture_copy)
    found = {e.relpath: e for e in entries(source)}
    assert found[S1].labels == ()
    with pytest.raises(InvalidSampleError, match=f"{metadata.name}: not valid JSON"):
        source.read(found[S1])
    assert source.read(found[S2]).shape == (12, 12, 12)


def test_metadata_without_coordinates_names_the_key(fixture_copy: Path, entries: Entries) -> None:
    metadata = next((fixture_copy / "bigearthnet" / S2).glob("*_labels_metadata.json"))
    metadata.write_text('{"labels": ["Pastures"], "projection": "EPSG:32633"}')
    source = open_copy(fixture_copy)
    entry = next(e for e in entries(source) if e.relpath == S2)
    with pytest.raises(InvalidSampleError, match=f"{metadata.name}: cannot read the footprint"):
        source.read(entry)
