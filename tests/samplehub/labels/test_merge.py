"""Algorithm 1 merge on a small hand-made base taxonomy (text-only semantics, real model)."""

from pathlib import Path

import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.graph import IS_A, MAPS_TO, SIMILAR, LabelGraph
from samplehub.labels.merge import LabelSemantics, Overrides, build_base_graph, merge_label_tree
from samplehub.labels.taxonomy import BaseLabel

BASE = [
    BaseLabel("water_area", 1, None),
    BaseLabel("transportation_land", 1, None),
    BaseLabel("river", 2, "water_area"),
    BaseLabel("lake", 2, "water_area"),
    BaseLabel("highway_area", 2, "transportation_land"),
    BaseLabel("airport_area", 2, "transportation_land"),
    BaseLabel("runway", 3, "airport_area", uncertain=True),
]


@pytest.fixture()
def base(bare_semantics: LabelSemantics) -> LabelGraph:
    return build_base_graph(BASE, bare_semantics)


def test_base_graph_has_is_a_with_similarity_and_uncertainty(base: LabelGraph) -> None:
    assert base.parents("runway") == ["airport_area"]
    edge = next(e for e in base.edges(IS_A) if e.source == "runway")
    assert edge.props["uncertain"] is True and 0 < edge.props["score"] <= 1
    assert base.is_a_cycle() is None
    assert len(base.embedding("river")) == 384


def test_synonym_maps_and_unknown_label_grows_a_unified_node(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    merged, rows = merge_label_tree(
        base, "ds", [("River", None), ("Lakes", None), ("airplane", None)], bare_semantics
    )
    assert merged.mapped_to("ds/River") == "river"
    assert merged.mapped_to("ds/Lakes") == "lake"
    grown = merged.mapped_to("ds/airplane")
    assert grown == "airplane" and merged.origin(grown) == "unified"
    assert {r.dataset_label: r.new for r in rows} == {
        "ds/River": False,
        "ds/Lakes": False,
        "ds/airplane": True,
    }
    assert "new unified label" in rows[2].why
    assert merged.unmapped_labels() == []
    # the input graph is untouched: a failed or discarded merge leaves no trace
    assert "ds/River" not in base.g and "airplane" not in base.g


def test_similar_edges_carry_scores(base: LabelGraph, bare_semantics: LabelSemantics) -> None:
    merged, _ = merge_label_tree(base, "ds", [("river_lake", None)], bare_semantics)
    similar = [e for e in merged.edges(SIMILAR) if e.source == "ds/river_lake"]
    assert similar, "river_lake should be similar to river or lake"
    for edge in similar:
        assert edge.props["score"] >= bare_semantics.settings.similar_threshold
        assert edge.props["text_sim"] == pytest.approx(edge.props["score"])
        assert edge.props["struct_sim"] is None  # no OSM network: text only


def test_dataset_hierarchy_keeps_is_a_and_places_grown_children(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    nodes = [("water", None), ("river", "water"), ("canal_network_xyz", "water")]
    merged, _ = merge_label_tree(base, "tree", nodes, bare_semantics)
    assert merged.parents("tree/river") == ["tree/water"]
    grown = merged.mapped_to("tree/canal_network_xyz")
    if merged.origin(grown) == "unified":
        assert merged.parents(grown) == [merged.mapped_to("tree/water")]


def test_remerge_replaces_the_dataset(base: LabelGraph, bare_semantics: LabelSemantics) -> None:
    once, _ = merge_label_tree(base, "ds", [("River", None), ("airplane", None)], bare_semantics)
    twice, _ = merge_label_tree(once, "ds", [("River", None)], bare_semantics)
    assert twice.labels("dataset", dataset="ds") == ["ds/River"]
    assert "airplane" not in twice.g  # the grown node of the removed label went with it


def test_overrides_pin_and_forbid(
    base: LabelGraph, bare_semantics: LabelSemantics, tmp_path: Path
) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(
        "pin:\n  - {dataset: ds, label: River, to: lake}\n"
        "forbid:\n  - {dataset: '*', label: Lakes, to: lake}\n",
        encoding="utf-8",
    )
    overrides = Overrides.from_yaml(path)
    merged, rows = merge_label_tree(
        base, "ds", [("River", None), ("Lakes", None)], bare_semantics, overrides
    )
    assert merged.mapped_to("ds/River") == "lake" and "pinned" in rows[0].why
    assert merged.mapped_to("ds/Lakes") != "lake"
    assert not merged.g.has_edge("ds/Lakes", "lake", key=SIMILAR)


def test_override_places_a_grown_label_under_a_parent(
    base: LabelGraph, bare_semantics: LabelSemantics, tmp_path: Path
) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("place:\n  - {dataset: '*', label: airplane, under: airport_area}\n",
                    encoding="utf-8")
    merged, rows = merge_label_tree(
        base, "ds", [("airplane", None)], bare_semantics, Overrides.from_yaml(path)
    )
    grown = merged.mapped_to("ds/airplane")
    assert merged.origin(grown) == "unified" and rows[0].new
    assert merged.parents(grown) == ["airport_area"]
    assert "placed under 'airport_area' by the label override file" in rows[0].why
    unplaced, _ = merge_label_tree(base, "ds", [("airplane", None)], bare_semantics)
    assert unplaced.parents(unplaced.mapped_to("ds/airplane")) != ["airport_area"]
    with pytest.raises(LabelGraphError, match="places ds/airplane under 'hangar'"):
        merge_label_tree(base, "ds", [("airplane", None)], bare_semantics,
                         Overrides(place={("*", "airplane"): "hangar"}))


def test_bad_overrides_and_pins_fail_clearly(
    base: LabelGraph, bare_semantics: LabelSemantics, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pin:\n  - {dataset: ds, label: River}\n", encoding="utf-8")
    with pytest.raises(LabelGraphError, match=r"pin\[0\] needs"):
        Overrides.from_yaml(bad)
    bad.write_text("place:\n  - {dataset: ds, label: River, to: lake}\n", encoding="utf-8")
    with pytest.raises(LabelGraphError, match=r"place\[0\] needs 'dataset', 'label' and 'under'"):
        Overrides.from_yaml(bad)
    overrides = Overrides(pin={("ds", "River"): "no_such_label"})
    with pytest.raises(LabelGraphError, match="no_such_label"):
        merge_label_tree(base, "ds", [("River", None)], bare_semantics, overrides)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([], "is empty"),
        ([("River", None), ("river", None)], "duplicates"),
        ([("River", "water")], "parent 'water'"),
        ([("a", "b"), ("b", "a")], "its own ancestor"),
        ([("River",)], "must be \\(name, parent\\)"),
    ],
)
def test_malformed_label_trees_are_rejected(
    base: LabelGraph, bare_semantics: LabelSemantics, nodes: list, message: str
) -> None:
    with pytest.raises(LabelGraphError, match=message):
        merge_label_tree(base, "ds", nodes, bare_semantics)


def test_bad_dataset_key_is_rejected(base: LabelGraph, bare_semantics: LabelSemantics) -> None:
    with pytest.raises(LabelGraphError, match="dataset key"):
        merge_label_tree(base, "a/b", [("River", None)], bare_semantics)


def test_maps_to_edges_have_explanations(base: LabelGraph, bare_semantics: LabelSemantics) -> None:
    merged, _ = merge_label_tree(base, "ds", [("Runways", None)], bare_semantics)
    edge = merged.mapping_edge("ds/Runways")
    assert edge is not None and edge.type == MAPS_TO and edge.target == "runway"
    assert edge.props["why"].startswith("text ")
