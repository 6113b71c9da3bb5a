"""The query reports an image once, with every dataset's labels (DESIGN sections 5-6).

``tree`` (``tests/data/folder_tree``) and ``copy`` (its forest images re-encoded as PNG
under ``trees/``, and the rivers under ``water/``) hold the same eight images. The label
graph maps ``copy/trees`` to ``forest``; ``water`` is a label of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from samplehub.config import load_config
from samplehub.labels.graph import MAPS_TO, LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.repository import Repository
from samplehub.retrieval.query import run_query
from samplehub.retrieval.types import QuerySpec
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "folder_tree"
COPIES = {"forest": "trees", "water/river": "water"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    root = tmp_path_factory.mktemp("duplicates")
    for folder, name in COPIES.items():
        (root / "copy" / name).mkdir(parents=True)
        for path in (FIXTURES / folder).glob("*.jpg"):
            Image.open(path).save(root / "copy" / name / f"{path.stem}.png")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SAMPLEHUB_HOME", str(root / "home"))
        repo = Repository(load_config(["executor.workers=2"]))
        repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES)))
        repo.ingest(SourceSpec(name="copy", uri=str(root / "copy")))
        graph = LabelGraph()
        for name in ("forest", "river", "water", "farmland"):
            graph.add_label(name, name, "base")
        graph.add_label("copy/trees", "trees", "dataset", dataset="copy")
        graph.add_edge("copy/trees", "forest", MAPS_TO, score=1.0)
        EmbeddedLabelGraphStore(repo.config.home_path).commit(graph, "duplicates test")
    return repo


def test_a_duplicate_is_one_exact_hit_with_all_its_labels(repo: Repository) -> None:
    result = run_query(repo, QuerySpec(labels=("forest",), include_supplementary=False))
    assert len(result.hits) == 4 and result.plan["labels"]["forest"]["exact_total"] == 4
    assert len({Path(h.relpath).stem for h in result.hits}) == 4
    for hit in result.hits:
        assert sorted(hit.labels) == ["forest", "trees"] and len(hit.copies) == 1
        copy = hit.copies[0]
        assert sorted(hit.datasets) == ["copy", "tree"] and hit.datasets[0] == hit.dataset
        paths = {(hit.dataset, hit.relpath), (copy.dataset, copy.relpath)}
        stem = Path(hit.relpath).stem
        assert paths == {("tree", f"forest/{stem}.jpg"), ("copy", f"trees/{stem}.png")}


def test_each_query_label_reports_the_image_once(repo: Repository) -> None:
    result = run_query(repo, QuerySpec(labels=("river", "water"), include_supplementary=False))
    by_label = {q: [h for h in result.hits if h.query_label == q] for q in ("river", "water")}
    assert len(by_label["river"]) == len(by_label["water"]) == 4
    assert {h.dataset for h in by_label["water"]} == {"copy"}
    assert all(h.labels == ["water", "river"] for h in by_label["water"])
    assert all(h.labels == ["river", "water"] for h in by_label["river"])
    limited = run_query(repo, QuerySpec(labels=("forest",), include_supplementary=False,
                                        exact_limit=3))
    assert len(limited.hits) == 3 and limited.plan["labels"]["forest"]["exact_total"] == 4


def test_images_held_once_are_unchanged(repo: Repository) -> None:
    result = run_query(repo, QuerySpec(labels=("farmland",), include_supplementary=False))
    assert len(result.hits) == 4
    assert all(h.copies == [] and h.labels == ["farmland"] for h in result.hits)


def test_the_query_cli_names_every_dataset_of_an_image(repo: Repository) -> None:
    from typer.testing import CliRunner

    from samplehub.cli.main import app

    result = CliRunner().invoke(
        app,
        ["query", "--label", "forest", "--no-supplementary", "--set",
         f"home={repo.config.home_path}"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "forest -> forest: 4 exact" in result.output
    rows = [line for line in result.output.splitlines() if "forest0" in line]
    assert len(rows) == 4 and all("copy, tree" in r or "tree, copy" in r for r in rows)
