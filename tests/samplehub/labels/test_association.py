"""Eq. 1 edge distances and associated labels (samplehub.labels.association)."""

import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.association import AssociationWeights, associated_labels, distance_graph
from samplehub.labels.graph import CO_OCCURS, IS_A, MAPS_TO, RELATED, SIMILAR, LabelGraph


@pytest.fixture()
def graph() -> LabelGraph:
    g = LabelGraph()
    for name in ("water_area", "river", "lake", "bridge"):
        g.add_label(name, name, "base")
    g.add_label("ds/River", "River", "dataset", dataset="ds")
    g.add_label("ml/water", "water", "dataset", dataset="ml")
    g.add_edge("river", "water_area", IS_A, score=0.5)
    g.add_edge("lake", "water_area", IS_A, score=0.8)
    g.add_edge("ds/River", "river", MAPS_TO, score=1.0)
    g.add_edge(
        "ds/River", "ml/water", CO_OCCURS, key="CO_OCCURS:t", count=30, weight=0.8, evidence="t"
    )
    g.add_edge(
        "ds/River", "bridge", CO_OCCURS, key="CO_OCCURS:t", count=2, weight=0.05, evidence="t"
    )
    g.add_edge("lake", "bridge", SIMILAR, score=0.25, text_sim=0.25, struct_sim=None)
    return g


def test_eq1_weights_by_relation(graph: LabelGraph) -> None:
    d = distance_graph(graph, AssociationWeights(alpha=1.0, beta=2.0, theta=0.1))
    assert d["water_area"]["river"]["distance"] == 0.0  # subclass
    assert d["river"]["water_area"]["distance"] == pytest.approx(1 / 0.5)  # parent: alpha / s
    assert d["lake"]["bridge"]["distance"] == pytest.approx(1 / 0.25)  # similar, both ways
    assert d["bridge"]["lake"]["distance"] == pytest.approx(4.0)
    assert d["ds/River"]["ml/water"]["distance"] == pytest.approx(2.0 / 0.8)  # beta / f
    assert not d.has_edge("ds/River", "bridge")  # f = 0.05 < theta
    assert d["river"]["ds/River"]["distance"] == 0.0  # a mapped dataset label is a subclass


def test_associated_labels_returns_paths_within_distance(graph: LabelGraph) -> None:
    found = associated_labels(
        graph, "river", 3.0, AssociationWeights(alpha=1.0, beta=1.0, theta=0.1)
    )
    by_label = {a.label: a for a in found}
    assert by_label["ds/River"].distance == 0.0
    assert by_label["ml/water"].path == ("river", "ds/River", "ml/water")
    assert by_label["ml/water"].relations == ("mapped_from", "co_occurs")
    assert by_label["lake"].distance == pytest.approx(2.0)
    assert by_label["lake"].path == ("river", "water_area", "lake")
    assert "bridge" not in by_label  # 2.0 + 4.0 > 3.0
    assert [a.distance for a in found] == sorted(a.distance for a in found)
    assert "river" not in by_label


def test_related_edges_take_the_similar_branch_of_eq1(graph: LabelGraph) -> None:
    graph.add_edge("river", "bridge", RELATED, score=0.4, evidence="osm_cocitation")
    d = distance_graph(graph, AssociationWeights(alpha=1.0))
    assert d["river"]["bridge"]["distance"] == pytest.approx(1 / 0.4)
    assert d["bridge"]["river"]["relation"] == "related"
    found = {a.label: a for a in associated_labels(graph, "river", 3.0)}
    assert found["bridge"].relations == ("related",)
    assert found["bridge"].distance == pytest.approx(2.5)


def test_unknown_label_and_bad_parameters_are_clear(graph: LabelGraph) -> None:
    with pytest.raises(LabelGraphError, match="'glacier' is not in the label graph"):
        associated_labels(graph, "glacier", 1.0)
    with pytest.raises(LabelGraphError, match="max_distance"):
        associated_labels(graph, "river", -1.0)
    with pytest.raises(LabelGraphError, match=r"association\.alpha"):
        AssociationWeights(alpha=0.0)
    with pytest.raises(LabelGraphError, match=r"association\.max_distance"):
        AssociationWeights(max_distance=-1.0)


def test_name_resolution_prefers_unified_labels(graph: LabelGraph) -> None:
    graph.add_label("ds2/river", "river", "dataset", dataset="ds2")
    assert graph.resolve("river") == "river"
    assert graph.resolve("River") == "ds/River"
