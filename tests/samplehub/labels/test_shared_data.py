"""The label graph on the real inputs in ../shared: Million-AID, the OSM Semantic Network,
eight scene datasets' class lists and UC Merced multi-label co-occurrence."""

from __future__ import annotations

import pytest
from labels_shared import OSM, TAXONOMY, UCM_MULTILABEL, needs_shared

from samplehub.labels.association import AssociationWeights, associated_labels
from samplehub.labels.cooccurrence import add_cooccurrence, read_ucmerced_multilabel
from samplehub.labels.embeddings import TextEmbedder
from samplehub.labels.graph import LAND_COVER, RELATED, LabelGraph
from samplehub.labels.merge import LabelSemantics, MergeSettings, build_base_graph, merge_label_tree
from samplehub.labels.osm import OsmSemanticNetwork
from samplehub.labels.taxonomy import (
    base_taxonomy,
    dataset_labels,
    label_vocabulary,
    load_taxonomy_file,
)

pytestmark = needs_shared
DATASETS = [
    "uc_merced_21",
    "eurosat_10",
    "aid_30",
    "nwpu_resisc45",
    "patternnet_38",
    "whu_rs19",
    "rsscn7",
    "siri_whu_12",
    "uc_merced_multilabel_17",
]


@pytest.fixture(scope="module")
def network() -> OsmSemanticNetwork:
    return OsmSemanticNetwork.from_rdf(OSM)


@pytest.fixture(scope="module")
def semantics(network: OsmSemanticNetwork, embedder: TextEmbedder) -> LabelSemantics:
    data = load_taxonomy_file(TAXONOMY)
    settings = MergeSettings(text_weight=0.5, map_threshold=0.7, similar_threshold=0.6)
    return LabelSemantics(
        network, embedder, network.vocabulary() | label_vocabulary(data), settings
    )


@pytest.fixture(scope="module")
def merged(semantics: LabelSemantics) -> LabelGraph:
    data = load_taxonomy_file(TAXONOMY)
    graph = build_base_graph(base_taxonomy(data), semantics)
    for key in DATASETS:
        entry = dataset_labels(data, key)
        graph, _ = merge_label_tree(graph, key, entry.nodes, semantics, aliases=entry.aliases)
    return graph


def test_base_taxonomy_is_8_28_51_with_ten_uncertain_leaves() -> None:
    base = base_taxonomy(load_taxonomy_file(TAXONOMY))
    levels = [label.level for label in base]
    assert levels.count(1) == 8 and levels.count(2) == 28 and len(base) == 73
    leaves = set(load_taxonomy_file(TAXONOMY)["million_aid"]["multi_class_51"])
    assert leaves <= {label.name for label in base}
    uncertain = {label.name for label in base if label.uncertain}
    assert len(uncertain) == 10 and "golf_course" in uncertain


def test_osm_matching_definitions_and_cocitation(network: OsmSemanticNetwork) -> None:
    river = network.match(["river"])
    assert any(network.concepts[u].tag == "waterway=river" for u in river.uris)
    assert not network.match(["bare", "land"]).uris  # generic head word alone does not match
    assert any("river" in d.lower() for d in network.definitions(river.uris))
    assert network.cocitation(river.uris[0], river.uris[0]) == 1.0
    lake = network.match(["lake"])
    desert = network.match(["desert"])
    assert network.structural_similarity(river, lake) > network.structural_similarity(river, desert)
    report = network.sparsity_report(river.uris + lake.uris + desert.uris)
    assert report["no_in_links"] >= 1  # natural=desert: the sparsity the fallback handles
    assert report["mean_citations_smoothed"] > report["mean_citations_raw"]


def test_every_dataset_label_maps_and_is_a_is_acyclic(merged: LabelGraph) -> None:
    assert merged.unmapped_labels() == []
    assert merged.is_a_cycle() is None
    assert set(merged.datasets()) == set(DATASETS)


@pytest.mark.parametrize(
    ("label", "unified"),
    [
        ("eurosat_10/Highway", "highway_area"),
        ("nwpu_resisc45/industrial_area", "industrial_land"),
        ("uc_merced_21/storagetanks", "storage_tank"),
        ("aid_30/DenseResidential", "dense_residential"),
        ("nwpu_resisc45/dense_residential", "dense_residential"),
        ("whu_rs19/Farmland", "farmland"),
        ("uc_merced_21/parkinglot", "parking_lot"),  # glued name segmented
        ("uc_merced_21/agricultural", "agriculture_land"),  # adjective -> landuse=agriculture
        ("aid_30/Commercial", "commercial_area"),
        ("aid_30/MediumResidential", "medium_residential"),
    ],
)
def test_known_synonyms_meet(merged: LabelGraph, label: str, unified: str) -> None:
    assert merged.mapped_to(label) == unified


def test_grown_labels_sit_under_the_right_base_label(merged: LabelGraph) -> None:
    assert merged.origin("dense_residential") == "unified"
    assert merged.parents("dense_residential") == ["residential_land"]
    # sparse residential is narrower than landuse=residential: placed under it
    assert merged.parents("sparse_residential") == ["residential_land"]
    assert merged.mapped_to("uc_merced_21/mediumresidential") == "medium_residential"


def test_osm_cocitation_relates_river_and_bridge(merged: LabelGraph) -> None:
    related = {frozenset((e.source, e.target)): e.props["score"] for e in merged.edges(RELATED)}
    assert related[frozenset(("river", "bridge"))] >= 0.3
    found = {
        a.label: a for a in associated_labels(merged, "river", AssociationWeights().max_distance)
    }
    assert found["bridge"].relations == ("related",)
    assert {"lake", "water_area", "siri_whu_12/water"} <= set(found)


def test_cooccurrence_links_river_to_water(merged: LabelGraph) -> None:
    samples = read_ucmerced_multilabel(UCM_MULTILABEL)
    assert len(samples) == 2100
    graph, added = add_cooccurrence(merged, samples, "ucmerced_multilabel", min_count=5)
    assert added > 50
    found = {a.label: a for a in associated_labels(graph, "river", 2.0, AssociationWeights())}
    water = found["uc_merced_multilabel_17/water"]
    assert water.relations[-1] == "co_occurs"
    assert "lake" in found and "water_area" in found
    assert found["lake"].path == ("river", "water_area", "lake")
    again, _ = add_cooccurrence(graph, samples, "ucmerced_multilabel", min_count=5)
    assert again.g.number_of_edges() == graph.g.number_of_edges()  # re-running a source replaces it


@pytest.mark.parametrize(
    ("folder", "unified"),
    [
        ("cIndustry", "industrial_land"),
        ("fResident", "residential_land"),
        ("gParking", "parking_lot"),
        ("eForest", "forest"),
    ],
)
def test_rsscn7_folder_names_land_on_the_unified_labels(
    merged: LabelGraph, semantics: LabelSemantics, folder: str, unified: str
) -> None:
    entry = dataset_labels(load_taxonomy_file(TAXONOMY), "rsscn7", shipped=True)
    assert folder in {name for name, _ in entry.nodes} and not entry.aliases
    graph, _ = merge_label_tree(merged, "rsscn7_folders", entry.nodes, semantics)
    assert graph.mapped_to(f"rsscn7_folders/{folder}") == unified
    assert not {"c_industry", "f_resident", "g_parking"} & set(graph.g)


def test_ucmerced_multilabel_trees_is_a_land_cover_label_next_to_forest(
    merged: LabelGraph, semantics: LabelSemantics
) -> None:
    from samplehub.retrieval.expansion import match_label

    entry = dataset_labels(load_taxonomy_file(TAXONOMY), "uc_merced_multilabel_17")
    graph, _ = merge_label_tree(
        merged, "uc_merced_multilabel_17", entry.nodes, semantics, kind=LAND_COVER
    )
    trees = graph.mapped_to("uc_merced_multilabel_17/trees")
    assert trees != "forest" and graph.kind_of(trees) == LAND_COVER
    assert "uc_merced_multilabel_17/trees" not in match_label(graph, "forest").equivalents
    related = {frozenset((e.source, e.target)) for e in graph.edges(RELATED)}
    assert frozenset((trees, "forest")) in related
    with_counts, _ = add_cooccurrence(
        graph, read_ucmerced_multilabel(UCM_MULTILABEL), "ucmerced_multilabel", min_count=5
    )
    found = {a.label for a in associated_labels(with_counts, "forest", 3.0, AssociationWeights())}
    assert "uc_merced_multilabel_17/trees" in found


def test_a_name_every_dataset_maps_alike_resolves(merged: LabelGraph) -> None:
    harbours = [n for n in merged.labels("dataset") if merged.name_of(n) == "harbor"]
    assert len(harbours) >= 3
    assert merged.resolve("harbor") == merged.mapped_to(harbours[0])
