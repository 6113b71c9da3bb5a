"""The Zarr store's layout: shards of many samples, writers that never share one,
truncation inside a shard, arrays of the unsharded layout, thumbnails made from images."""

import shutil
from pathlib import Path
from threading import Barrier, Thread

import numpy as np
import pytest
import zarr

from samplehub.config import load_config
from samplehub.errors import SampleNotFoundError
from samplehub.ingest import aligned_parts
from samplehub.records import FileEntry, GeoInfo, SampleRecord
from samplehub.repository import Repository
from samplehub.sources import SourceSpec
from samplehub.store import DatasetStore, SampleStore, array_key
from samplehub.store.zarr_store import SHARD_SAMPLES, fit_thumbnail, shard_rows, thumbnail

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def record(i: int, shape: tuple[int, int, int] = (3, 4, 4), dtype: str = "uint8",
           bands: tuple[str, ...] = ("red", "green", "blue")) -> SampleRecord:
    rng = np.random.default_rng(i)
    entry = FileEntry(dataset="d", relpath=f"c/{i}.jpg", uri=f"/x/{i}.jpg", labels=("c",),
                      label_path=("c",))
    return SampleRecord(entry=entry, image=rng.integers(1, 200, shape).astype(dtype),
                        band_names=bands, geo=GeoInfo(), checksum=str(i))


def objects(store: DatasetStore, path: str) -> int:
    """Stored objects of one array (chunks or shards), its metadata left out."""
    return sum(1 for p in (Path(store.uri) / path).rglob("*")
               if p.is_file() and p.name != "zarr.json")


def test_a_shard_holds_many_samples_and_small_rgb_images_store_no_thumbnails(
    tmp_path: Path,
) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    records = [record(i) for i in range(2 * SHARD_SAMPLES + 5)]
    store.append(records)
    key = "uint8_3x4x4"
    assert objects(store, f"images/{key}") == 3
    assert "thumbs" not in store.group  # each image is its own thumbnail's source
    for i in (0, SHARD_SAMPLES, len(records) - 1):
        assert np.array_equal(store.image(key, i), records[i].image)
        assert np.array_equal(store.thumb(key, i, records[i].band_names),
                              thumbnail(records[i], 8))
    many = [record(i, (4, 4, 4), "uint16", ("b1", "b2", "b3", "b4")) for i in range(40)]
    store.append(many)  # four bands: the thumbnail is a composite, stored beside
    assert objects(store, "thumbs/uint16_4x4x4") == 1
    assert np.array_equal(store.thumb("uint16_4x4x4", len(records) + 3, many[3].band_names),
                          thumbnail(many[3], 8))


def test_large_samples_get_fewer_rows_per_shard() -> None:
    assert shard_rows(3 * 64 * 64) == SHARD_SAMPLES
    assert shard_rows(3 * 256 * 256) == 256
    assert shard_rows(2**40) == 1
    assert all(SHARD_SAMPLES % shard_rows(n) == 0 for n in (1, 10**5, 10**6, 10**7))


def test_parts_are_cut_at_shard_boundaries_of_the_row_space() -> None:
    placed = [(FileEntry("d", f"{r}", f"/{r}"), r) for r in range(300, 2500)]
    parts = aligned_parts(placed, 1024)
    assert [(p[0][1], p[-1][1] + 1) for p in parts] == [(300, 1024), (1024, 2048),
                                                        (2048, 2500)]


def test_writers_of_aligned_parts_at_once_leave_exactly_their_pixels(tmp_path: Path) -> None:
    """A run starting inside a committed shard: its first writer alone rewrites that one."""
    root = str(tmp_path / "zarr")
    records = [record(i) for i in range(2500)]
    SampleStore(root, thumb_size=8).dataset("d").append(records[:300])  # committed before
    parts = aligned_parts([(r.entry, i) for i, r in enumerate(records)][300:], SHARD_SAMPLES)
    start = Barrier(len(parts))

    def write(part: list[tuple[FileEntry, int]]) -> None:
        target = SampleStore(root, thumb_size=8).dataset("d")  # one per writer, as executors
        rows = [row for _, row in part]
        start.wait()
        for at in range(0, len(rows), 256):  # in decode-sized pieces, as write_part does
            target.write_rows([records[r] for r in rows[at:at + 256]], rows[at:at + 256],
                              len(records))

    writers = [Thread(target=write, args=(part,)) for part in parts]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    store = SampleStore(root, thumb_size=8).dataset("d")
    stored = store.images("uint8_3x4x4", np.arange(len(records)))
    assert np.array_equal(stored, np.stack([r.image for r in records]))


def test_truncating_inside_a_shard_drops_the_rows_and_leaves_holes(tmp_path: Path) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    store.append([record(i) for i in range(40)])
    key = "uint8_3x4x4"
    assert store.truncate(key, 25) == 15
    assert store.row_counts() == {key: 25}
    late = record(99)
    store.write_rows([late], [30], 40)  # grown again: rows 25..39 but 30 are holes
    assert np.array_equal(store.image(key, 30), late.image)
    assert not store.images(key, np.r_[25:30, 31:40]).any()
    assert np.array_equal(store.image(key, 24), record(24).image)
    assert store.truncate(key, 0) == 40 and objects(store, f"images/{key}") == 0


def test_a_write_around_rows_written_before_keeps_them(tmp_path: Path) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    store.write_rows([record(1)], [1], 8)
    store.write_rows([record(0), record(4), record(2)], [0, 4, 2], 8)
    stored = store.images("uint8_3x4x4", np.arange(5))
    assert np.array_equal(stored[[0, 1, 2, 4]], np.stack([record(i).image for i in (0, 1, 2, 4)]))
    assert not stored[3].any()


def test_thumbnails_made_from_images_equal_the_ones_ingest_made(tmp_path: Path) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=64).dataset("d")
    chip, small = record(1, (3, 64, 64)), record(2, (3, 40, 48))
    bgr = record(3, (3, 64, 64), bands=("blue", "green", "red"))
    s2 = record(4, (3, 32, 32), bands=("B02", "B03", "B04"))
    s2.sensor = "sentinel-2"  # its mapping puts B04 in red
    records = [chip, small, bgr, s2]
    locations = store.append(records)
    assert "thumbs" not in store.group
    for rec, (key, row) in zip(records, locations, strict=True):
        assert np.array_equal(store.thumb(key, row, rec.band_names, rec.sensor),
                              thumbnail(rec, 64))
    assert not np.array_equal(thumbnail(bgr, 64), bgr.image)
    assert np.array_equal(thumbnail(s2, 64), fit_thumbnail(s2.image[::-1].copy(), 64))
    with pytest.raises(SampleNotFoundError):
        store.thumb("uint8_3x64x64", 4, chip.band_names)


def old_layout(store: DatasetStore, bands: tuple[str, ...] = ("red", "green", "blue")) -> None:
    """Rewrite every array of a dataset of ``bands`` as SampleHub wrote them before shards:
    one object per sample, zarr's default codecs, a thumbnail stored for every row."""
    for key, rows in store.row_counts().items():
        images = np.asarray(store.group[f"images/{key}"][:])
        thumbs = np.stack([store.thumb(key, i, bands) for i in range(rows)])
        for kind, values in (("images", images), ("thumbs", thumbs)):
            group = store.group.require_group(kind)
            if key in group:
                del group[key]
            array = group.create_array(key, shape=values.shape, chunks=(1, *values.shape[1:]),
                                       dtype=values.dtype)
            array[:] = values


def test_arrays_of_the_unsharded_layout_are_read_appended_and_truncated(
    home: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    images = sorted((FIXTURES / "folder_tree").rglob("*.jpg"))
    for image in images[:7]:
        (tree / image.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, tree / image.parent.name / image.name)
    repo = Repository(load_config(["executor.batch_size=4"]))
    spec = SourceSpec(name="tree", uri=str(tree))
    repo.ingest(spec)
    target = repo.store.dataset("tree")
    old_layout(target)
    (key,) = target.row_counts()
    rgb = ("red", "green", "blue")
    before = {i: (target.image(key, i), target.thumb(key, i, rgb)) for i in range(7)}
    for image in images[7:]:
        (tree / image.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, tree / image.parent.name / image.name)
    target.write_rows([record(5, (3, 24, 24))], [7], 9)  # a killed run's uncommitted row
    report = repo.ingest(spec)
    assert report.reclaimed == 2 and report.added == len(images) - 7
    array = target.group[f"images/{key}"]
    assert isinstance(array, zarr.Array)
    assert array.shards is None and array.chunks[0] == 1 and array.shape[0] == len(images)
    for i, (image, thumb) in before.items():
        assert np.array_equal(target.image(key, i), image)
        assert np.array_equal(target.thumb(key, i, rgb), thumb)
    source = repo.open_source(spec)
    rows = repo.catalog.read("samples", "tree", columns=["relpath", "zarr_index"]).to_pylist()
    entries = {e.relpath: e for batch in source.discover(100) for e in batch}
    for row in rows:
        decoded = source.read(entries[row["relpath"]])
        assert array_key(decoded.image) == key
        assert np.array_equal(target.image(key, row["zarr_index"]), decoded.image)
        assert np.array_equal(target.thumb(key, row["zarr_index"], decoded.band_names),
                              thumbnail(decoded, 64))


def test_unsharded_thumbnail_arrays_are_appended_to(tmp_path: Path) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    bands = ("b1", "b2", "b3", "b4")
    first = [record(i, (4, 16, 16), "uint16", bands) for i in range(3)]
    store.append(first)
    old_layout(store, bands)
    more = [record(i, (4, 16, 16), "uint16", bands) for i in range(3, 6)]
    store.append(more)
    key = "uint16_4x16x16"
    for kind in ("images", "thumbs"):
        array = store.group[f"{kind}/{key}"]
        assert isinstance(array, zarr.Array) and array.shards is None and array.shape[0] == 6
    for i, rec in enumerate(first + more):
        assert np.array_equal(store.image(key, i), rec.image)
        assert np.array_equal(store.thumb(key, i, bands), thumbnail(rec, 8))


def test_rows_are_read_in_the_order_asked_for(tmp_path: Path) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    records = [record(i) for i in range(SHARD_SAMPLES + 40)]
    store.append(records)
    rows = np.array([SHARD_SAMPLES + 3, 2, 3, 4, 2, SHARD_SAMPLES - 1, SHARD_SAMPLES, 0])
    assert np.array_equal(store.images("uint8_3x4x4", rows),
                          np.stack([records[r].image for r in rows]))
    assert store.images("uint8_3x4x4", np.array([], dtype=int)).shape == (0, 3, 4, 4)
    with pytest.raises(SampleNotFoundError):
        store.images("uint8_3x4x4", np.array([0, len(records)]))


def test_rgb_samples_are_lossless_webp_and_others_zstd(tmp_path: Path) -> None:
    import json

    from samplehub.store.codecs import NAME

    store = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    rgb = [record(i, (3, 16, 16)) for i in range(5)]
    bands = [record(i, (4, 8, 8), "uint16", ("b1", "b2", "b3", "b4")) for i in range(5)]
    store.append(rgb + bands)

    def inner_codecs(key: str) -> list[str]:
        meta = json.loads((Path(store.uri) / "images" / key / "zarr.json").read_text())
        (shard,) = meta["codecs"]
        return [codec["name"] for codec in shard["configuration"]["codecs"]]

    assert inner_codecs("uint8_3x16x16") == ["transpose", NAME]
    assert inner_codecs("uint16_4x8x8") == ["transpose", "bytes", "zstd"]
    reopened = SampleStore(str(tmp_path / "zarr"), thumb_size=8).dataset("d")
    for i, rec in enumerate(rgb + bands):
        assert np.array_equal(reopened.image(array_key(rec.image), i), rec.image)
