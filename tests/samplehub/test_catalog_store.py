"""Delta catalog and Zarr store on local disk: atomic appends, partition replace, reads."""

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from threading import Barrier

import numpy as np
import pyarrow as pa
import pytest

from samplehub.catalog import Catalog, DatasetInfo, schema
from samplehub.errors import DatasetNotFoundError, SampleNotFoundError
from samplehub.ingest import records_to_table
from samplehub.records import FileEntry, GeoInfo, SampleRecord, sample_id_for
from samplehub.store import SampleStore, array_key


def record(
    dataset: str,
    name: str,
    shape: tuple[int, int, int],
    dtype: str = "uint8",
    labels: tuple[str, ...] = ("forest",),
) -> SampleRecord:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    image = rng.integers(0, 200, shape).astype(dtype)
    bands = ("red", "green", "blue") if shape[0] == 3 else tuple(f"b{i}" for i in range(shape[0]))
    entry = FileEntry(
        dataset=dataset,
        relpath=f"{labels[0]}/{name}.jpg",
        uri=f"/x/{name}.jpg",
        labels=labels,
        label_path=labels,
    )
    return SampleRecord(
        entry=entry,
        image=image,
        band_names=bands,
        geo=GeoInfo(bbox=(10.0, 45.0, 10.01, 45.01)),
        checksum=name,
    )


def test_sample_id_is_stable_and_dataset_scoped() -> None:
    assert sample_id_for("a", "x/1.jpg") == sample_id_for("a", "x/1.jpg")
    assert sample_id_for("a", "x/1.jpg") != sample_id_for("b", "x/1.jpg")
    assert 0 <= sample_id_for("a", "x/1.jpg") < 2**63


def test_store_groups_by_shape_and_round_trips(tmp_path: Path) -> None:
    store = SampleStore(str(tmp_path / "zarr"), thumb_size=16).dataset("d")
    records = [
        record("d", "a", (3, 32, 32)),
        record("d", "b", (3, 20, 24)),
        record("d", "c", (3, 32, 32)),
        record("d", "s2", (12, 8, 8), "uint16"),
    ]
    locations = store.append(records)
    assert [loc[0] for loc in locations] == [
        "uint8_3x32x32",
        "uint8_3x20x24",
        "uint8_3x32x32",
        "uint16_12x8x8",
    ]
    # A record's row is its place in the batch, whatever its shape: other shapes' rows
    # are holes, so writers can place samples before decoding them.
    assert [loc[1] for loc in locations] == [0, 1, 2, 3]
    for rec, (key, row) in zip(records, locations, strict=True):
        assert key == array_key(rec.image)
        assert np.array_equal(store.image(key, row), rec.image)
        assert store.thumb(key, row, rec.band_names).shape == (3, 16, 16)
    assert store.image("uint8_3x32x32", 1).sum() == 0  # a hole reads as the fill value
    more = store.append([record("d", "e", (3, 32, 32))])
    assert more == [("uint8_3x32x32", 4)]
    with pytest.raises(SampleNotFoundError):
        store.image("uint8_3x32x32", 7)


def test_write_rows_in_any_order_by_separate_writers(tmp_path: Path) -> None:
    """Writers given rows up front write them in any order and land where placed."""
    root = str(tmp_path / "zarr")
    records = [record("d", str(i), (3, 16, 16)) for i in range(6)]
    for i in (4, 1, 5, 0, 3, 2):  # each write through its own store object, as executors do
        SampleStore(root, thumb_size=8).dataset("d").write_rows([records[i]], [10 + i], 16)
    store = SampleStore(root, thumb_size=8).dataset("d")
    assert store.row_counts() == {"uint8_3x16x16": 16}
    for i, rec in enumerate(records):
        assert np.array_equal(store.image("uint8_3x16x16", 10 + i), rec.image)
    assert store.truncate("uint8_3x16x16", 16) == 0


def test_catalog_append_read_and_label_filter(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "catalog"))
    assert catalog.sample_ids("d").size == 0
    records = [record("d", "a", (3, 8, 8)), record("d", "b", (3, 8, 8), labels=("river",))]
    catalog.append("samples", records_to_table(records, [("k", 0), ("k", 1)]))
    catalog.append("samples", records_to_table([record("e", "a", (3, 8, 8))], [("k", 0)]))
    assert len(catalog.sample_ids("d")) == 2 and len(catalog.sample_ids("e")) == 1
    catalog.register_dataset(DatasetInfo(dataset="d", source_uri="/x", kind="folder_tree"))
    rivers = catalog.samples("d", label="river")
    assert list(rivers["relpath"]) == ["river/b.jpg"]
    row = catalog.sample(records[0].entry.sample_id)
    assert row["dataset"] == "d" and row["georeferenced"] and row["hilbert"] > 0
    with pytest.raises(SampleNotFoundError):
        catalog.sample(12345)
    with pytest.raises(DatasetNotFoundError, match="samplehub ingest"):
        catalog.samples("nope")


def test_registry_row_is_replaced_not_duplicated(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "catalog"))
    catalog.register_dataset(DatasetInfo(dataset="d", source_uri="/x", kind="k", n_samples=1))
    catalog.register_dataset(DatasetInfo(dataset="e", source_uri="/y", kind="k", n_samples=5))
    catalog.register_dataset(DatasetInfo(dataset="d", source_uri="/x", kind="k", n_samples=2))
    frame = catalog.datasets()
    assert list(frame["dataset"]) == ["d", "e"]
    assert list(frame["n_samples"]) == [2, 5]


WRITERS = 8


def write_at_once(root: str, i: int, start: Barrier) -> None:
    """One writer process: a feedback row, then its dataset's registry row, each at the
    barrier with the other writers."""
    row = {"spec_id": "q", "dataset": "d", "sample_id": i, "decision": "reject",
           "who": f"reviewer-{i}", "at": datetime.now(UTC)}
    catalog = Catalog(root)
    try:
        start.wait()
        catalog.append("feedback", pa.Table.from_pylist([row], schema=schema.FEEDBACK))
        start.wait()
        catalog.register_dataset(DatasetInfo(dataset=f"d{i}", source_uri="/x", kind="k"))
    except BaseException:
        start.abort()  # the others stop waiting for a writer that failed
        raise


def test_writers_racing_to_create_a_table_each_land_once(tmp_path: Path) -> None:
    # All writers find no table; all but one lose the commit of version 0 and write again.
    root = str(tmp_path / "catalog")
    spawn = multiprocessing.get_context("spawn")  # delta-rs's runtime does not survive fork
    start = spawn.Barrier(WRITERS, timeout=60)
    writers = [spawn.Process(target=write_at_once, args=(root, i, start))
               for i in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [w.exitcode for w in writers] == [0] * WRITERS
    catalog = Catalog(root)
    ids = catalog.read("feedback", columns=["sample_id"]).column("sample_id").to_pylist()
    assert sorted(ids) == list(range(WRITERS))
    assert sorted(catalog.datasets()["dataset"]) == sorted(f"d{i}" for i in range(WRITERS))


def test_clustering_by_hilbert_key_lets_a_bbox_read_skip_files(tmp_path: Path) -> None:
    """Rows of two places, interleaved: sorted by key, a bbox read opens one place's files."""
    catalog = Catalog(str(tmp_path / "catalog"))
    records = []
    for i in range(120):
        rec = record("geo", f"s{i}", (3, 4, 4))
        x, y = (10.0, 45.0) if i % 2 else (-70.0, -30.0)  # the Alps and the Andes
        rec.geo = GeoInfo(bbox=(x + i * 1e-3, y, x + i * 1e-3 + 0.01, y + 0.01))
        records.append(rec)
    catalog.append("samples", records_to_table(records, [("k", i) for i in range(120)]))
    before = catalog.read("samples", "geo").drop_columns(["ingested_at"]).sort_by("sample_id")
    assert catalog.cluster_by_hilbert("geo", rows_per_file=20) == 6
    after = catalog.read("samples", "geo").drop_columns(["ingested_at"]).sort_by("sample_id")
    assert after.equals(before), "clustering moves rows between files, it changes none"
    alps = catalog.bbox_expression((9.0, 44.0, 11.0, 46.0))
    assert catalog.files_read("samples", alps) == (3, 6)
    assert catalog.read("samples", filter_expression=alps).num_rows == 60


@pytest.mark.parametrize("dataset", ["plain", "a b/é%"])
def test_uncommitted_part_files_are_told_from_committed_and_replaced_ones(
    tmp_path: Path, dataset: str
) -> None:
    """The log writes paths percent-encoded; the listing sees the stored names."""
    catalog = Catalog(str(tmp_path / "catalog"))
    rows = pa.Table.from_pylist(
        [{"dataset": dataset, "sample_id": 1, "model_version": "m", "vector": [0.5]}],
        schema.FEATURES,
    )
    replaced = catalog.write_file("features", dataset, rows)
    catalog.commit_files("features", [replaced])
    current = catalog.write_file("features", dataset, rows)
    catalog.commit_files("features", [current], replace=dataset)
    orphan = catalog.write_file("features", dataset, rows)
    catalog.write_file("features", "another", rows.set_column(1, "dataset", pa.array(["another"])))

    assert catalog.uncommitted_files("features", dataset) == [orphan.path]
    assert catalog.drop_uncommitted_files("features", dataset) == 1
    assert catalog.uncommitted_files("features", dataset) == []
    assert catalog.read("features", dataset).num_rows == 1
    assert len(catalog.uncommitted_files("features", "another")) == 1
