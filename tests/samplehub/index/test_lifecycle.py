"""The index lifecycle on synthetic features in a real ``features`` table: built once,
grown by a new dataset's features, retrained after growth, recall measured against exact."""

from pathlib import Path

import numpy as np
import pytest

from samplehub.config import load_config
from samplehub.errors import IndexNotTrainedError
from samplehub.feature_store import feature_table
from samplehub.index.ivfpq import indexed_ids, suggest_nlist
from samplehub.index.lifecycle import (
    index_path,
    index_recall,
    load_ivfpq_index,
    update_ivfpq_index,
)
from samplehub.repository import Repository

VERSION = "test-v1"
D = 32


def clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 20 seeded centres, (n, D)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((20, D))
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def land(repo: Repository, dataset: str, first_id: int, n: int) -> np.ndarray:
    """Write n synthetic features of a new dataset; returns their ids."""
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    repo.catalog.append("features", feature_table(ids, dataset, VERSION, clustered(n, first_id)))
    return ids


@pytest.fixture
def repo(home: Path) -> Repository:
    return Repository(load_config(["retrieval.pq_m=8", "retrieval.retrain_growth=2.0"]))


def test_build_then_incremental_add_when_a_dataset_lands(repo: Repository) -> None:
    with pytest.raises(IndexNotTrainedError):
        load_ivfpq_index(repo, VERSION)
    first = land(repo, "a", 1, 1500)
    built = update_ivfpq_index(repo, VERSION)
    assert (built.action, built.added, built.ntotal) == ("built", 1500, 1500)
    assert (built.nlist, built.coarse, built.nbits) == (15, "hnsw", 8)  # cells of ~100 vectors
    assert built.path == index_path(repo.config, VERSION) and (built.path / "index.faiss").is_file()
    assert update_ivfpq_index(repo, VERSION).action == "unchanged"

    second = land(repo, "b", 100_000, 500)
    grown = update_ivfpq_index(repo, VERSION)
    assert (grown.action, grown.added, grown.ntotal) == ("added", 500, 2000)
    index = load_ivfpq_index(repo, VERSION)
    assert index.ntotal_at_train == 1500  # quantisers kept: growth 2000/1500 < 2
    assert set(indexed_ids(index)) == set(first) | set(second)


def test_retrain_after_growth_by_the_configured_factor(repo: Repository) -> None:
    land(repo, "a", 1, 40)
    small = update_ivfpq_index(repo, VERSION)
    assert (small.nlist, small.nbits) == (1, 5)  # a tiny repository still trains
    land(repo, "b", 1000, 1000)
    retrained = update_ivfpq_index(repo, VERSION)
    assert (retrained.action, retrained.added, retrained.ntotal) == ("retrained", 1000, 1040)
    assert (retrained.nlist, retrained.nbits) == (suggest_nlist(1040), 8)
    assert load_ivfpq_index(repo, VERSION).ntotal_at_train == 1040


def test_recall_against_exact_search_passes_the_bar(repo: Repository) -> None:
    land(repo, "a", 1, 2000)
    update_ivfpq_index(repo, VERSION)
    report = index_recall(repo, probe=100, k=20, model_version=VERSION)
    assert (report.k, report.nq, report.ntotal) == (20, 100, 2000)
    assert report.recall >= repo.config.retrieval.recall_bar


def test_no_features_no_index(repo: Repository) -> None:
    with pytest.raises(IndexNotTrainedError, match="image_features"):
        update_ivfpq_index(repo, VERSION)


def test_training_vectors_read_file_by_file_take_each_ids_first_vector(tmp_path: Path) -> None:
    from samplehub.catalog import Catalog
    from samplehub.index.lifecycle import training_vectors

    catalog = Catalog(str(tmp_path / "catalog"))
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((6, 4)).astype(np.float32)
    twice = xb[[5, 2]] + 1  # later copies of ids 5 and 2, which must lose to the first
    files = [catalog.write_file("features", "d", feature_table(np.array(ids), "d", "v", x))
             for ids, x in (([5, 1, 3], xb[[5, 1, 3]]),
                            ([0, 2, 5, 2], np.vstack([xb[[0, 2]], twice])),
                            ([4], xb[[4]]))]
    other = catalog.write_file("features", "d", feature_table(np.array([1]), "d", "w", xb[:1]))
    uris = [f"{catalog.uri('features')}/{f.path}" for f in [*files, other]]
    wanted = np.array([0, 1, 2, 3, 4, 5])
    assert np.array_equal(training_vectors(catalog, uris, "v", wanted, 4), xb)
    assert np.array_equal(training_vectors(catalog, uris, "v", np.array([2, 4]), 4), xb[[2, 4]])
    with pytest.raises(IndexNotTrainedError, match="1 training vectors of v"):
        training_vectors(catalog, uris[:2], "v", wanted, 4)
