"""Cross-dataset integrity on real data (DESIGN section 5; skipped without ../shared/data).

``ucmerced`` (21 scene classes) and ``ucmerced_multilabel`` (17 object labels of the same
files, Chaudhuri et al. 2017) are the same 2,100 files. Every one of the 4,200 samples is
found as a copy; the files hold 2,099 distinct images, because ``airplane01.jpg`` and
``airplane02.jpg`` are byte-identical in UC Merced itself. The query reports each image
once with both datasets' labels, and a dataset built from every label of both holds each
image once, in one split. UC Merced carries no georeference, so the
Hilbert-cell half of the split rule is shown on the BigEarthNet examples, whose S1 and S2
patches cover the same places.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from samplehub.catalog import find_duplicates
from samplehub.config import load_config
from samplehub.export import build_dataset, parse_spec
from samplehub.export.builder import placement_of
from samplehub.hilbert import HILBERT_ORDER
from samplehub.labels.graph import LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.repository import Repository
from samplehub.retrieval.query import run_query
from samplehub.retrieval.types import QuerySpec

UCMERCED = ("ucmerced", "ucmerced_multilabel")
BIGEARTHNET = ("bigearthnet_s1", "bigearthnet_s2")
RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}


def label_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def ingest_with_graph(home: Path, shared_data: Path, names: tuple[str, ...]) -> Repository:
    """Ingest the configured sources ``names``; a graph of one base label per label name."""
    repo = Repository(load_config([f"home={home}", f"data_root={shared_data}",
                                   "executor.workers=2"]))
    sources = repo.sources()
    for name in names:
        report = repo.ingest(sources[name])
        assert report.added == report.found and not report.quarantined
    graph = LabelGraph()
    for label in sorted(labels_of(repo)):
        graph.add_label(label_id(label), label, "base")
    EmbeddedLabelGraphStore(repo.config.home_path).commit(graph, "one label per name")
    return repo


def labels_of(repo: Repository) -> set[str]:
    column = repo.catalog.read("samples", columns=["labels"]).column("labels")
    return {label for labels in column.to_pylist() for label in labels}


@pytest.fixture(scope="module")
def ucmerced(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Repository:
    return ingest_with_graph(tmp_path_factory.mktemp("ucm") / "home", shared_data, UCMERCED)


def test_every_ucmerced_sample_is_found_as_a_copy(ucmerced: Repository) -> None:
    report = find_duplicates(ucmerced.catalog)
    assert report.samples == 4200 and not report.unhashed
    assert report.copies == 4200 and len(report.images) == 2099
    assert report.by_datasets() == {UCMERCED: 2099}
    pairs = [image for image in report.images if len(image.copies) == 2]
    assert len(pairs) == 2098
    for image in pairs:
        assert [c.dataset for c in image.copies] == list(UCMERCED)
        assert image.copies[0].relpath == image.copies[1].relpath
    (twice,) = [image for image in report.images if len(image.copies) == 4]
    assert [(c.dataset, c.relpath) for c in twice.copies] == [
        (dataset, f"airplane/airplane0{i}.jpg") for dataset in UCMERCED for i in (1, 2)
    ]
    assert twice.labels == ("airplane", "grass", "pavement")


def test_the_query_reports_each_image_once_with_both_label_sets(ucmerced: Repository) -> None:
    result = run_query(ucmerced, QuerySpec(labels=("airplane",), include_supplementary=False))
    assert len(result.hits) == 99 and result.plan["labels"]["airplane"]["exact_total"] == 99
    for hit in result.hits:
        assert sorted(hit.datasets) == list(UCMERCED)
        assert "airplane" in hit.labels and len(hit.labels) > 1  # the object labels too
    files = {(h.dataset, h.relpath) for h in result.hits}
    files |= {(c.dataset, c.relpath) for h in result.hits for c in h.copies}
    assert files == {(d, f"airplane/airplane{i:02d}.jpg") for d in UCMERCED for i in range(100)}


def test_a_build_holds_each_image_once_and_never_on_two_sides(ucmerced: Repository) -> None:
    labels = sorted(labels_of(ucmerced))
    assert len(labels) == 21 + 17 - 3  # airplane, buildings, chaparral are in both
    spec = parse_spec({"name": "ucm", "labels": [label_id(x) for x in labels],
                       "include_supplementary": False,
                       "split": {"ratios": RATIOS, "seed": 7}})
    logical = build_dataset(ucmerced, spec)
    placement = placement_of(ucmerced.catalog, [m.sample_id for m in logical.members])
    images = [placement.image[m.sample_id] for m in logical.members]
    assert len(logical.members) == len(set(images)) == 2099
    assert placement.hilbert == {}  # not georeferenced: only copies tie samples together
    ids = [int(i) for dataset in UCMERCED for i in ucmerced.catalog.sample_ids(dataset)]
    every = placement_of(ucmerced.catalog, ids)
    split_of = {placement.image[m.sample_id]: m.split for m in logical.members}
    assert set(every.image.values()) == set(split_of)  # both copies of each image covered
    counts = {s: list(split_of.values()).count(s) for s in RATIOS}
    assert all(abs(counts[s] / 2099 - r) < 0.02 for s, r in RATIOS.items())


def test_bigearthnet_patches_of_one_cell_share_a_split(
    shared_data: Path, tmp_path: Path
) -> None:
    repo = ingest_with_graph(tmp_path / "home", shared_data, BIGEARTHNET)
    labels = sorted(labels_of(repo))
    spec = parse_spec({"name": "ben", "labels": [label_id(x) for x in labels],
                       "include_supplementary": False,
                       "split": {"ratios": {"train": 0.5, "test": 0.5}, "seed": 0}})
    logical = build_dataset(repo, spec)
    placement = placement_of(repo.catalog, [m.sample_id for m in logical.members])
    assert len(placement.hilbert) == len(logical.members) == 12
    shift = 2 * (HILBERT_ORDER - spec.split.hilbert_level)
    split_of_cell: dict[int, set[str]] = {}
    for m in logical.members:
        split_of_cell.setdefault(placement.hilbert[m.sample_id] >> shift, set()).add(m.split)
    assert all(len(splits) == 1 for splits in split_of_cell.values())
    assert len(split_of_cell) < 12  # some S1 and S2 patches do share a cell
