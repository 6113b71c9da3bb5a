"""Paths into ../shared used by the label-graph tests, and the skip marker for them."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
TAXONOMY = SHARED / "taxonomy" / "dataset_labels.json"
OSM = SHARED / "data" / "osm_semantic_network" / "osm_semantic_network.skos.rdf.gz"
UCM_MULTILABEL = SHARED / "data" / "ucmerced_multilabel" / "LandUse_Multilabeled.txt"

needs_shared = pytest.mark.skipif(
    not TAXONOMY.is_file() or not OSM.is_file(),
    reason=f"needs the shared taxonomy and OSM Semantic Network under {SHARED}",
)
