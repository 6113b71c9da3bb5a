"""LabelGraph's label accessors: what callers read instead of the node attribute dicts."""

import numpy as np
import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.graph import LAND_COVER, MAPS_TO, SCENE, LabelGraph
from samplehub.labels.merge import node_attrs
from samplehub.labels.text import AugmentedLabel


@pytest.fixture()
def graph() -> LabelGraph:
    g = LabelGraph()
    g.add_label("river", "river", "base", level=2, dataset="million_aid", embedding=[1.0, 0.0])
    g.add_label("trees", "trees", "unified", dataset="ml", kind=LAND_COVER, embedding=[0.0, 1.0])
    g.add_label("ds/River", "River", "dataset", dataset="ds", kind=SCENE)
    g.add_label("ml/trees", "trees", "dataset", dataset="ml", kind=LAND_COVER)
    g.add_edge("ds/River", "river", MAPS_TO, score=1.0)
    g.add_edge("ml/trees", "trees", MAPS_TO, score=1.0)
    return g


def test_origin_dataset_name_and_kind(graph: LabelGraph) -> None:
    assert [graph.origin(n) for n in ("river", "trees", "ds/River")] == [
        "base",
        "unified",
        "dataset",
    ]
    assert graph.dataset_of("ds/River") == "ds" and graph.dataset_of("trees") == "ml"
    assert graph.name_of("ds/River") == "River"
    assert graph.kind_of("trees") == LAND_COVER
    assert graph.kind_of("river") == SCENE  # stored without a kind: a scene label
    assert list(graph.embedding("river")) == [1.0, 0.0]


def test_is_unified_covers_base_and_grown_labels_and_unknown_ids(graph: LabelGraph) -> None:
    assert graph.is_unified("river") and graph.is_unified("trees")
    assert not graph.is_unified("ds/River")
    assert not graph.is_unified("nowhere")  # no error: not a unified label
    assert "river" in graph and "nowhere" not in graph


def test_mapped_from_lists_the_dataset_labels_of_a_unified_label(graph: LabelGraph) -> None:
    assert graph.mapped_from("river") == ["ds/River"]
    assert graph.mapped_from("ds/River") == []


@pytest.mark.parametrize("read", ["origin", "dataset_of", "name_of", "kind_of", "embedding"])
def test_an_unknown_label_fails_naming_it(graph: LabelGraph, read: str) -> None:
    with pytest.raises(LabelGraphError, match="'nowhere' is not in the label graph"):
        getattr(graph, read)("nowhere")


def test_node_attrs_carry_the_augmented_text_and_vector() -> None:
    aug = AugmentedLabel(
        name="sparse residential",
        words=("sparse", "residential"),
        text="sparse residential. residential land",
        osm_tags=("landuse=residential",),
        osm_uris=("http://wiki.openstreetmap.org/wiki/Tag:landuse=residential",),
        osm_qualifier=("sparse",),
    )
    attrs = node_attrs(aug, np.asarray([0.6, 0.8], dtype=np.float32))
    assert attrs == {
        "description": "sparse residential. residential land",
        "embedding": pytest.approx([0.6, 0.8]),
        "osm_tags": ["landuse=residential"],
        "osm_uris": ["http://wiki.openstreetmap.org/wiki/Tag:landuse=residential"],
        "osm_qualifier": ["sparse"],
    }
    g = LabelGraph()
    g.add_label("sparse_residential", "sparse_residential", "unified", **attrs)
    assert g.label("sparse_residential")["osm_qualifier"] == ["sparse"]
