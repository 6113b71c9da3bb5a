"""Seeded synthetic clustered features shared by the hashing tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

# Features (n, dim) and class labels (n,).
Clusters = tuple[np.ndarray, np.ndarray]
ClusterFactory = Callable[..., Clusters]


def make_clusters(
    n_classes: int = 5, per_class: int = 40, dim: int = 32, spread: float = 0.6, seed: int = 0
) -> Clusters:
    """Gaussian blobs around random non-negative centres: features (n, dim), labels (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.0, 2.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), per_class)
    x = centres[y] + spread * rng.standard_normal((len(y), dim))
    return np.abs(x).astype(np.float32), y


@pytest.fixture
def clusters() -> Clusters:
    """Five well-separated classes of 40 samples in 32 dimensions."""
    return make_clusters()


@pytest.fixture
def cluster_factory() -> ClusterFactory:
    """The :func:`make_clusters` generator, for tests that need other sizes."""
    return make_clusters
