"""Algorithm 1 on shipped names: ordinal prefixes, land-cover labels of multi-label sets,
grown labels joining their namesakes, and query names shared by several datasets."""

import pytest
from test_merge import BASE

from samplehub.errors import LabelGraphError
from samplehub.labels.graph import IS_A, LAND_COVER, RELATED, SIMILAR, LabelGraph
from samplehub.labels.merge import LabelSemantics, Overrides, build_base_graph, merge_label_tree


@pytest.fixture()
def base(bare_semantics: LabelSemantics) -> LabelGraph:
    return build_base_graph(BASE, bare_semantics)


def test_ordinal_prefixes_are_matched_without_them(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    nodes = [("aRiver", None), ("bLakes", None), ("cAirplane", None)]
    merged, rows = merge_label_tree(base, "rsscn", nodes, bare_semantics)
    assert merged.mapped_to("rsscn/aRiver") == "river"
    assert merged.mapped_to("rsscn/bLakes") == "lake"
    assert merged.mapped_to("rsscn/cAirplane") == "airplane"  # grown as airplane, not c_airplane
    assert merged.name_of("rsscn/aRiver") == "aRiver"  # catalog rows still find it
    assert [r.new for r in rows] == [False, False, True]


def test_a_land_cover_label_never_maps_to_a_scene_label_by_score(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    # like UC Merced multi-label ``trees`` and the scene ``forest``
    as_scene, _ = merge_label_tree(base, "ml", [("river_bank", None)], bare_semantics)
    assert as_scene.mapped_to("ml/river_bank") == "river"
    merged, [row] = merge_label_tree(
        base, "ml", [("river_bank", None)], bare_semantics, kind=LAND_COVER
    )
    grown = merged.mapped_to("ml/river_bank")
    assert grown == "river_bank" and row.new
    assert merged.kind_of(grown) == LAND_COVER
    assert merged.kind_of("ml/river_bank") == LAND_COVER
    assert merged.parents(grown) == []  # never placed under a scene label
    related = {e.target: e.props for e in merged.edges(RELATED) if e.source == grown}
    assert related["river"]["evidence"] == "label_similarity"
    assert related["river"]["score"] >= bare_semantics.settings.similar_threshold
    assert not [e for e in merged.edges(SIMILAR) if e.source == "ml/river_bank"]
    assert not [e for e in merged.edges(IS_A) if e.source == grown]


def test_a_grown_label_joins_its_namesake_and_stays_one_label_across_remerges(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    scenes, [grew] = merge_label_tree(base, "scenes", [("Pasture", None)], bare_semantics)
    assert grew.new and grew.unified == "pasture"
    both, [joined] = merge_label_tree(
        scenes, "ben", [("Pastures", None)], bare_semantics, kind=LAND_COVER
    )
    assert joined.unified == "pasture" and not joined.new
    assert "joins existing unified label 'pasture' by name" in joined.why
    # merging the scene dataset again (the label_graph asset re-merges every partition)
    # finds the label it grew, which ben has joined, instead of growing pasture_2
    again, [row] = merge_label_tree(both, "scenes", [("Pasture", None)], bare_semantics)
    assert row.unified == "pasture" and not row.new
    assert "pasture_2" not in again.g
    assert again.mapped_to("ben/Pastures") == "pasture"


def test_a_trees_own_new_classes_stay_distinct(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    nodes = [("canal_network", None), ("canal_networks_old", None)]
    _, rows = merge_label_tree(base, "ds", nodes, bare_semantics)
    # near-identical words, but a dataset's own classes are distinct: both grow
    assert [(r.unified, r.new) for r in rows] == [
        ("canal_network", True),
        ("canal_network_old", True),
    ]


def test_a_name_shared_by_labels_mapping_to_one_unified_label_resolves_to_it(
    base: LabelGraph, bare_semantics: LabelSemantics
) -> None:
    graph, _ = merge_label_tree(base, "ucm", [("harbor", None)], bare_semantics)
    graph, _ = merge_label_tree(graph, "siri", [("harbor", None)], bare_semantics)
    unified = graph.mapped_to("ucm/harbor")
    assert graph.mapped_to("siri/harbor") == unified
    assert graph.resolve("harbor") == unified
    split, _ = merge_label_tree(
        graph,
        "siri",
        [("harbor", None)],
        bare_semantics,
        Overrides(pin={("siri", "harbor"): "lake"}),
    )
    with pytest.raises(LabelGraphError, match="ambiguous"):
        split.resolve("harbor")


def test_unknown_kind_is_rejected(base: LabelGraph, bare_semantics: LabelSemantics) -> None:
    with pytest.raises(LabelGraphError, match="kind"):
        merge_label_tree(base, "ds", [("River", None)], bare_semantics, kind="object")
