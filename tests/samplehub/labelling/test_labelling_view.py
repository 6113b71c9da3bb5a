"""The stored labelling view: input checks, versions, label actions with undo, publishing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from labelling_fixture import VIEW, labelled_home, open_repo
from PIL import Image

from samplehub.errors import ConfigError, LabellingError, LabellingViewNotFoundError
from samplehub.labelling.view import (
    LabellingView,
    publish_labels,
    write_labelling_view,
)
from samplehub.records import sample_id_for


def tiny() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Two chips of four 2x2 segments each."""
    chips = pd.DataFrame({"sample_id": ["11", "22"], "x": [0.0, 1.0], "y": [0.0, 1.0]})
    segments = pd.DataFrame({"sample_id": ["11"] * 4 + ["22"] * 4,
                             "segment": [1, 2, 3, 4] * 2, "x": np.arange(8.0), "y": np.ones(8)})
    mask = np.repeat(np.repeat(np.array([[1, 2], [3, 4]]), 2, 0), 2, 1).astype(np.int32)
    return chips, segments, {"11": mask, "22": mask.copy()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c, s, m: (c.drop(columns="x"), s, m), "chips: missing column(s) ['x']"),
        (lambda c, s, m: (c.iloc[:0], s, m), "chips: no rows"),
        (lambda c, s, m: (c.assign(sample_id=["11", "11"]), s, m), "repeats ['11']"),
        (lambda c, s, m: (c.assign(sample_id=["11", "a"]), s, m), "decimal integers"),
        (lambda c, s, m: (c.assign(y=[0.0, np.nan]), s, m), "column 'y' must hold finite"),
        (lambda c, s, m: (c, s.assign(sample_id=["33"] * 8), m), "not in chips: ['33']"),
        (lambda c, s, m: (c, s.assign(segment=[1.5] * 8), m), "column 'segment' must hold"),
        (lambda c, s, m: (c, pd.concat([s, s.iloc[:1]]), m), "(11, 1) appears more than once"),
        (lambda c, s, m: (c, s, {"11": m["11"]}), "no mask for chips ['22']"),
        (lambda c, s, m: (c, s, {**m, "99": m["11"]}), "keys ['99'] are not sample ids"),
        (lambda c, s, m: (c, s, {**m, "22": m["22"][None]}), "masks['22']: expected a 2-D"),
        (lambda c, s, m: (c, s, {**m, "22": np.ones((4, 4), np.int32)}), "segments [2, 3, 4]"),
    ],
)
def test_bad_input_names_the_column_or_key(
    tmp_path: Path, change: Callable[..., tuple], message: str
) -> None:
    chips, segments, masks = change(*tiny())
    with pytest.raises(LabellingError) as info:
        write_labelling_view(tmp_path, "v", chips, segments, masks)
    assert message in str(info.value)
    assert not (tmp_path / "labelling" / "v" / "current").exists()


def test_bad_names_and_missing_views(tmp_path: Path) -> None:
    with pytest.raises(LabellingError, match=re.escape("dataset name '../x'")):
        write_labelling_view(tmp_path, "../x", *tiny())
    with pytest.raises(LabellingViewNotFoundError, match="no labelling view 'nope'"):
        LabellingView.open(tmp_path, "nope")


def test_labels_undo_redo_and_progress_survive_a_rewrite(tmp_path: Path) -> None:
    write_labelling_view(tmp_path, "v", *tiny())
    view = LabellingView.open(tmp_path, "v")
    assert LabellingView.names(tmp_path) == ["v"]
    assert view.mask("11").shape == (4, 4) and view.segments["segment"].dtype == np.int32
    view.apply_label("chip", " water ", chips=["11"])
    state = view.apply_label("segment", "tree", segments=[("22", 3), ("22", 4)])
    assert state.chips == {"11": "water"} and state.segments == {("22", 3): "tree",
                                                                  ("22", 4): "tree"}
    assert view.labels.undo().segments == {}
    assert view.labels.redo().segments[("22", 4)] == "tree"
    view.labels.undo()
    view.apply_label("chip", "field", chips=["22"])  # a new action drops the redo history
    progress = view.progress()
    assert (progress.chips_labelled, progress.segments_labelled, progress.can_redo) == (2, 0, False)
    assert progress.by_label == {"field": {"chips": 1, "segments": 0},
                                 "water": {"chips": 1, "segments": 0}}
    assert view.apply_label("chip", None, chips=["22"]).chips == {"11": "water"}

    chips, segments, masks = tiny()
    write_labelling_view(tmp_path, "v", chips.assign(x=[5.0, 6.0]), segments, masks)
    again = LabellingView.open(tmp_path, "v")
    assert again.folder != view.folder and list(again.chips["x"]) == [5.0, 6.0]
    assert again.labels.state().chips == {"11": "water"}
    assert len(list((tmp_path / "labelling" / "v").glob("v-*"))) == 2  # live and previous

    for call, message in [
        (lambda: again.apply_label("chip", "x", chips=["404"]), "has no chips ['404']"),
        (lambda: again.apply_label("segment", "x", segments=[("11", 9)]), "no segments"),
        (lambda: again.apply_label("chip", "x"), "the selection is empty"),
        (lambda: again.apply_label("chip", "a/b", chips=["11"]), "label 'a/b'"),
        (lambda: again.apply_label("chip", "x", chips=["11"], segments=[("11", 1)]),
         "also names segments"),
        (lambda: again.apply_label("pixel", "x", chips=["11"]), "mode must be"),  # type: ignore[arg-type]
    ]:
        with pytest.raises((LabellingError, LabellingViewNotFoundError), match=re.escape(message)):
            call()


@pytest.fixture
def ingested(labelling_home: Path) -> Path:
    return labelling_home


def test_publish_writes_a_new_dataset_and_ingests_it(ingested: Path, tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    repo, chips = labelled_home(ingested, tmp_path / "home", watched)
    view = LabellingView.open(repo.config.home_path, VIEW)
    with pytest.raises(LabellingError, match="no chip has a label yet"):
        publish_labels(repo, view)
    unwatched = open_repo(repo.config.home_path, watched)
    unwatched.config.watch_root = None
    with pytest.raises(ConfigError, match="watch_root"):
        publish_labels(unwatched, view)

    water = chips[chips["relpath"].str.startswith("SeaLake/")]["sample_id"].tolist()
    forest = chips[chips["relpath"].str.startswith("Forest/")]["sample_id"].tolist()
    view.apply_label("chip", "open water", chips=water)
    view.apply_label("segment", "shore", segments=[(forest[0], 1), (forest[0], 2)])
    report = publish_labels(repo, view)

    assert (report.dataset, report.version, report.unchanged) == ("chips-labels-v1", 1, False)
    assert (report.chips_published, report.chips_unlabelled, report.masks) == (10, 30, 1)
    assert report.ingest.added == 10 and report.path.parent == watched.resolve()
    assert repo.sources()["chips-labels-v1"].platform == "watched"  # the sensor's candidate
    rows = repo.catalog.read("samples", "chips-labels-v1").to_pandas()
    assert sorted(rows["labels"].map(tuple)) == [("open water",)] * 10
    originals = repo.catalog.read("samples", VIEW).to_pandas().set_index("sample_id")
    # lossless copies: the catalog sees each published chip as a copy of its source image
    assert set(rows["content_hash"]) == set(originals.loc[[int(w) for w in water],
                                                          "content_hash"])
    mask = np.asarray(Image.open(report.path / ".masks" / f"{forest[0]}.png"))
    slic = view.mask(forest[0])
    assert set(np.unique(mask[np.isin(slic, [1, 2])])) == {1}
    assert set(np.unique(mask[~np.isin(slic, [1, 2])])) == {0}
    assert report.segment_labels == ("shore",)

    again = publish_labels(repo, view)  # same labels: nothing new, ingest a no-op
    assert (again.dataset, again.unchanged, again.ingest.added) == ("chips-labels-v1", True, 0)
    view.apply_label("chip", "forest", chips=forest)
    third = publish_labels(repo, view)
    assert (third.dataset, third.chips_published, third.chips_unlabelled) == (
        "chips-labels-v2", 20, 20)
    assert len(repo.catalog.read("samples", "chips-labels-v1")) == 10  # kept as published
    stem = Path(originals.loc[int(forest[0]), "relpath"]).stem
    relpath = f"forest/{stem}-{forest[0]}.png"  # class folder / source stem - source id
    assert sample_id_for("chips-labels-v2", relpath) in set(
        repo.catalog.sample_ids("chips-labels-v2"))
    assert not list(watched.glob(".*partial*"))
