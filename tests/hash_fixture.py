"""A tiny repository for the deep-hashing tests: the folder-tree fixture (3 labels x 4
images) with seeded 32-d features per label and settings that train in a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samplehub.config import load_config
from samplehub.feature_store import feature_table
from samplehub.models.feature_model import model_version
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parent / "data"
TINY = ["hashing.bits=16", "hashing.epochs=3", "hashing.dmch_dataset=tree",
        "hashing.duwh_dataset=tree", "hashing.retrain_min_new_samples=10"]


def tiny_hash_repository(overrides: list[str] | None = None) -> Repository:
    """Ingest ``tree`` under the current SAMPLEHUB_HOME and store features for it.

    ``overrides`` extend :data:`TINY` (e.g. ``mlflow.tracking_uri=...``).
    """
    repo = Repository(load_config([*TINY, *(overrides or [])]))
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    rows = repo.catalog.samples("tree", columns=["sample_id", "labels"])
    rng = np.random.default_rng(0)
    centres = {label: rng.standard_normal(32) for label in {ls[0] for ls in rows["labels"]}}
    xb = np.stack([centres[ls[0]] + 0.3 * rng.standard_normal(32) for ls in rows["labels"]])
    xb = (xb / np.linalg.norm(xb, axis=1, keepdims=True)).astype(np.float32)
    ids = rows["sample_id"].to_numpy()
    repo.catalog.append("features", feature_table(ids, "tree", model_version(repo.config), xb))
    return repo
