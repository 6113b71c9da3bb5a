"""Fixtures of the label-graph tests: a session-wide embedder (the model loads once) and
paths into ../shared, whose tests skip with a reason when it is absent."""

from __future__ import annotations

import pytest

from samplehub.labels.embeddings import TextEmbedder
from samplehub.labels.merge import LabelSemantics, MergeSettings


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> TextEmbedder:
    """One embedder (and one model load) for the whole session, cache in a temp dir."""
    return TextEmbedder(cache_dir=tmp_path_factory.mktemp("embeddings"))


@pytest.fixture()
def bare_semantics(embedder: TextEmbedder) -> LabelSemantics:
    """Text-only semantics (no OSM network), thresholds for small hand-made taxonomies."""
    merge = MergeSettings(text_weight=0.7, map_threshold=0.8, similar_threshold=0.5)
    return LabelSemantics(None, embedder, frozenset(), merge)
