"""Label prototypes on the folder-tree fixture with synthetic features: K-means centres per
original label, per unified label through the label graph's MAPS_TO edges, replaced per
model version."""

from pathlib import Path

import numpy as np
import pytest

from samplehub.config import load_config
from samplehub.feature_store import feature_table
from samplehub.labels.graph import MAPS_TO, LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.repository import Repository
from samplehub.retrieval.prototypes import compute_prototypes, kmeans_prototypes, load_prototypes
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[2] / "data"
VERSION = "test-v1"
D = 16


@pytest.fixture
def repo(home: Path) -> Repository:
    """The folder tree (farmland, forest, river; 4 samples each) with one-hot-ish features."""
    repo = Repository(load_config(["retrieval.prototypes_per_label=2"]))
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    rows = repo.catalog.samples("tree", columns=["sample_id", "labels"])
    axis = {"farmland": 0, "forest": 1, "river": 2}
    rng = np.random.default_rng(0)
    xb = 0.1 * rng.standard_normal((len(rows), D)).astype(np.float32)
    for i, labels in enumerate(rows["labels"]):
        xb[i, axis[labels[0]]] += 1.0
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    repo.catalog.append("features", feature_table(rows["sample_id"].to_numpy(), "tree",
                                                  VERSION, xb))
    return repo


def test_prototypes_per_original_label(repo: Repository) -> None:
    report = compute_prototypes(repo, VERSION)
    assert (report.labels, report.prototypes, report.skipped) == (3, 6, 0)
    prototypes = load_prototypes(repo.catalog, VERSION)
    assert set(prototypes) == {"tree/farmland", "tree/forest", "tree/river"}
    for axis, label in enumerate(["tree/farmland", "tree/forest", "tree/river"]):
        found = prototypes[label]
        assert found.vectors.shape == (2, D) and found.n_members.sum() == 4
        np.testing.assert_allclose(np.linalg.norm(found.vectors, axis=1), 1.0, atol=1e-5)
        assert (found.vectors.argmax(axis=1) == axis).all()  # centres sit on their label's axis
    assert set(load_prototypes(repo.catalog, VERSION, ["tree/river"])) == {"tree/river"}
    assert load_prototypes(repo.catalog, "other-version") == {}


def test_unified_labels_pool_mapped_dataset_labels(repo: Repository) -> None:
    graph = LabelGraph()
    graph.add_label("water_area", "water_area", "base")
    for name in ("river", "forest"):
        graph.add_label(f"tree/{name}", name, "dataset", dataset="tree")
    graph.add_edge("tree/river", "water_area", MAPS_TO)
    graph.add_edge("tree/forest", "water_area", MAPS_TO)
    EmbeddedLabelGraphStore(repo.config.home_path).commit(graph, "test")

    compute_prototypes(repo, VERSION)
    unified = load_prototypes(repo.catalog, VERSION)["water_area"]
    assert unified.n_members.sum() == 8  # the four river and the four forest samples
    assert sorted(unified.vectors.argmax(axis=1)) == [1, 2]  # one centre per source label


def test_rerun_replaces_only_its_model_version(repo: Repository) -> None:
    compute_prototypes(repo, VERSION)
    compute_prototypes(repo, VERSION)
    assert sum(len(p.n_members) for p in load_prototypes(repo.catalog, VERSION).values()) == 6
    report = compute_prototypes(repo, "no-features-yet")
    assert (report.prototypes, report.skipped) == (0, 3)
    assert len(load_prototypes(repo.catalog, VERSION)) == 3


def test_kmeans_with_fewer_members_than_centres() -> None:
    x = np.eye(3, D, dtype=np.float32)
    centres, counts = kmeans_prototypes(x, 4)
    assert centres.shape == (3, D) and counts.tolist() == [1, 1, 1]
