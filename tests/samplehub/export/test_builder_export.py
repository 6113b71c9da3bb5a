"""Builder, feedback and export end to end on the ingested fixtures (query test double)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import zarr
from PIL import Image
from query_double import fake_run_query

from samplehub.errors import BuildNotFoundError, ExportExistsError, SampleNotFoundError
from samplehub.export import (
    BuildStore,
    Decision,
    build_dataset,
    export_dataset,
    export_feedback,
    parse_spec,
    record_feedback,
)
from samplehub.export.feedback import Rejections, rejected_ids
from samplehub.repository import Repository

SPEC = {
    "name": "rivers",
    "labels": ["river", "farmland", "Pastures"],
    "split": {"ratios": {"train": 0.5, "val": 0.5}, "seed": 3},
}


def test_build_is_deterministic_with_exact_first_and_quotas(small_repo: Repository) -> None:
    spec = parse_spec({**SPEC, "quotas": {"river": 7}})
    logical = build_dataset(small_repo, spec, query=fake_run_query)
    counts = logical.counts()
    # 5 rivers (4 in tree, 1 in ml) exact, then 2 of the 4 forests as supplementary.
    assert counts["river"]["exact"] == 5 and counts["river"]["supplementary"] == 2
    assert counts["farmland"]["exact"] == 4 and counts["farmland"]["supplementary"] == 2
    assert counts["Pastures"] == {"exact": 1, "train": 1}
    assert counts["river"]["train"] + counts["river"]["val"] == 7
    assert abs(counts["river"]["train"] - counts["river"]["val"]) <= 1
    supplementary = [m for m in logical.members if m.label == "river" and m.kind != "exact"]
    assert [m.score for m in supplementary] == pytest.approx([0.9, 0.8])
    assert supplementary[0].path == ["river", "water_area", "forest"]
    again = build_dataset(small_repo, spec, query=fake_run_query)
    assert again.build_id == logical.build_id
    assert [(m.sample_id, m.split) for m in again.members] == [
        (m.sample_id, m.split) for m in logical.members
    ]
    without = build_dataset(
        small_repo, parse_spec({**SPEC, "include_supplementary": False}), query=fake_run_query
    )
    assert {m.kind for m in without.members} == {"exact"}


def test_builds_round_trip_and_unknown_id_is_clear(small_repo: Repository, tmp_path: Path) -> None:
    logical = build_dataset(small_repo, parse_spec(SPEC), query=fake_run_query)
    store = BuildStore(tmp_path / "builds")
    folder = store.save(logical)
    assert store.save(logical) == folder and store.ids() == [logical.build_id]
    loaded = store.load(logical.build_id)
    assert loaded.members == logical.members and loaded.spec == logical.spec
    with pytest.raises(BuildNotFoundError, match="no logical dataset 'nope'"):
        store.load("nope")


def test_rejected_samples_are_never_suggested_again(small_repo: Repository, tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    first = build_dataset(small_repo, spec, query=fake_run_query)
    forest = [m for m in first.members if m.kind == "supplementary" and m.label == "river"]
    record_feedback(
        small_repo.catalog,
        spec.spec_id,
        [Decision(forest[0].sample_id, "reject", "river", "supplementary"),
         Decision(forest[1].sample_id, "accept", "river", "supplementary")],
        who="tester",
    )
    second = build_dataset(small_repo, spec, query=fake_run_query)
    ids = {m.sample_id for m in second.members}
    assert forest[0].sample_id not in ids and forest[1].sample_id in ids
    other = build_dataset(small_repo, parse_spec({**SPEC, "labels": ["river"]}),
                          query=fake_run_query)
    assert forest[0].sample_id in {m.sample_id for m in other.members}  # another query

    out = export_feedback(small_repo.catalog, tmp_path / "feedback.csv", spec.spec_id)
    rows = pd.read_csv(out)
    assert set(rows["decision"]) == {"accept", "reject"}
    assert rows.loc[0, "labels"] == "forest" and set(rows["who"]) == {"tester"}
    with pytest.raises(SampleNotFoundError):
        record_feedback(small_repo.catalog, spec.spec_id, [Decision(12345, "accept")])


def test_export_writes_every_format_atomically(small_repo: Repository, tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    logical = build_dataset(small_repo, spec, query=fake_run_query)
    supplementary = [m for m in logical.members if m.kind == "supplementary"]
    record_feedback(small_repo.catalog, spec.spec_id,
                    [Decision(supplementary[0].sample_id, "accept"),
                     Decision(supplementary[1].sample_id, "reject")])
    out = tmp_path / "export"
    report = export_dataset(small_repo, logical, out, supplementary="accepted")
    assert report.samples == len(logical.members) - len(supplementary) + 1
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == report.samples
    assert set(manifest["kind"]) == {"exact", "supplementary"}
    assert len(pd.read_csv(out / "manifest.csv")) == report.samples

    for row in manifest.itertuples():
        assert (out / row.file).is_file()
        assert row.file.startswith(f"{row.split}/{row.label}/")
    pasture = manifest[manifest["label"] == "Pastures"].iloc[0]
    assert pasture.file.endswith(".tif")
    with rasterio.open(out / pasture.file) as tif:
        assert tif.count == 12 and tif.dtypes[0] == "uint16" and tif.crs.to_epsg() == 4326
        assert tif.descriptions[3] == "B04"
    river = manifest[manifest["label"] == "river"].iloc[0]
    assert Image.open(out / river.file).size == (24, 24)

    bundle = zarr.open_group(str(out / "images.zarr"), mode="r")
    assert bundle.attrs["classes"] == SPEC["labels"]
    key, index = pasture.zarr_array, int(pasture.zarr_index)
    assert bundle[f"sample_id/{key}"][index] == pasture.sample_id
    stored = small_repo.image(int(pasture.sample_id))[1]
    np.testing.assert_array_equal(bundle[f"images/{key}"][index], stored)

    assert "stac/collection.json" in report.files  # validated in test_stac.py
    collection = json.loads((out / "stac" / "collection.json").read_text())
    assert collection["type"] == "Collection" and collection["id"] == SPEC["name"]
    items = [link for link in collection["links"] if link["rel"] == "item"]
    assert len(items) == report.samples
    props = json.loads((out / "stac" / items[0]["href"]).read_text())["properties"]
    assert props["label:classes"] == [{"name": "label", "classes": SPEC["labels"]}]
    assert props["label:properties"] == ["label"]

    with pytest.raises(ExportExistsError):
        export_dataset(small_repo, logical, out)
    export_dataset(small_repo, logical, out, formats=["imagefolder"], overwrite=True)
    assert not (out / "images.zarr").exists() and (out / "manifest.parquet").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_export_leaves_nothing(small_repo: Repository, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    logical = build_dataset(small_repo, parse_spec(SPEC), query=fake_run_query)

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("samplehub.export.export.write_sample", broken)
    with pytest.raises(OSError, match="disk full"):
        export_dataset(small_repo, logical, tmp_path / "exports" / "export")
    assert list((tmp_path / "exports").iterdir()) == []


def test_exported_imagefolder_loads_with_a_standard_dataset_class(
    small_repo: Repository, tmp_path: Path
) -> None:
    from torchvision.datasets import ImageFolder

    spec = parse_spec({**SPEC, "labels": ["river", "farmland"]})
    logical = build_dataset(small_repo, spec, query=fake_run_query)
    export_dataset(small_repo, logical, tmp_path / "export", formats=["imagefolder"])
    train = ImageFolder(str(tmp_path / "export" / "train"))
    assert set(train.classes) == {"river", "farmland"}
    image, target = train[0]
    assert image.size == (24, 24) and train.classes[target] in {"river", "farmland"}


def test_rejections_follow_every_commit_to_the_feedback_table(small_repo: Repository) -> None:
    ids = small_repo.catalog.read("samples", columns=["sample_id"])["sample_id"].to_pylist()
    rejections = Rejections(small_repo.catalog)
    assert rejections.of("q1") == set()  # no feedback table yet
    record_feedback(small_repo.catalog, "q1", [Decision(ids[0], "reject"),
                                               Decision(ids[1], "reject")])
    record_feedback(small_repo.catalog, "q2", [Decision(ids[2], "reject")])
    assert rejections.of("q1") == {ids[0], ids[1]} == rejected_ids(small_repo.catalog, "q1")
    record_feedback(small_repo.catalog, "q1", [Decision(ids[1], "accept")])  # latest wins
    assert rejections.of("q1") == {ids[0]} and rejections.of("q2") == {ids[2]}


def test_rejections_see_a_commit_that_left_the_log_folder_mtime_unchanged(
    small_repo: Repository,
) -> None:
    ids = small_repo.catalog.read("samples", columns=["sample_id"])["sample_id"].to_pylist()
    rejections = Rejections(small_repo.catalog)
    record_feedback(small_repo.catalog, "q1", [Decision(ids[0], "reject")])
    log = Path(small_repo.catalog.uri("feedback").removeprefix("file://")) / "_delta_log"
    read_at = log.stat().st_mtime_ns
    assert rejections.of("q1") == {ids[0]}
    record_feedback(small_repo.catalog, "q1", [Decision(ids[1], "reject")])
    os.utime(log, ns=(read_at, read_at))  # the second commit landed within the same tick
    assert rejections.of("q1") == {ids[0], ids[1]}
