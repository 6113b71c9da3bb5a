"""The label_graph asset in-process: a scene dataset and a multi-label manifest over the
same images give land-cover labels and CO_OCCURS edges with counts, in one version."""

from pathlib import Path

from asset_results import FIXTURES, metadata
from dagster import instance_for_test, materialize

from assets.label_graph import every_dataset_label_maps, is_a_acyclic, label_graph
from assets.partitions import dataset_partitions
from assets.resources import SampleHubResource
from samplehub.labels.graph import CO_OCCURS, LAND_COVER
from samplehub.sources import SourceSpec

MANIFEST = FIXTURES / "multilabel_manifest"


def test_label_graph_derives_cooccurrence_from_multilabel_samples(
    home: Path, shared_data: Path
) -> None:
    resource = SampleHubResource(overrides=["graph.cooccurrence_min_count=1"])
    repo = resource.repository()
    repo.ingest(SourceSpec(name="ml", uri=str(MANIFEST / "manifest.txt")))
    repo.ingest(SourceSpec(name="scenes", uri=str(MANIFEST / "images")))
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, ["scenes", "ml", "not_yet"])
        result = materialize(
            [label_graph, is_a_acyclic, every_dataset_label_maps],
            resources={"samplehub": resource},
            instance=instance,
        )
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    meta = metadata(result, "label_graph")
    assert meta["land_cover_datasets"] == ["ml"]
    assert meta["datasets_not_in_catalog"] == ["not_yet"]
    assert meta["multi_label_images"] == 3
    graph = repo.labels.load()
    assert meta["version"] == graph.version == 1  # trees and co-occurrence in one version
    counts = {frozenset((e.source, e.target)): e.props["count"] for e in graph.edges(CO_OCCURS)}
    assert meta["co_occurs_edges"] == len(counts) > 0
    # residential00 (buildings, cars, trees) and residential01 (buildings) are one
    # residential scene each in ``scenes``: two images, so count 2
    assert counts[frozenset(("scenes/residential", "ml/buildings"))] == 2
    assert counts[frozenset(("scenes/river", "ml/water"))] == 1
    assert counts[frozenset(("ml/trees", "ml/water"))] == 1
    edge = next(
        e for e in graph.edges(CO_OCCURS) if {e.source, e.target} == {"ml/trees", "ml/water"}
    )
    assert edge.props["evidence"] == "catalog" and 0 < edge.props["weight"] <= 1
    trees = graph.mapped_to("ml/trees")
    assert graph.kind_of("ml/trees") == LAND_COVER
    assert graph.kind_of(trees) == LAND_COVER and trees != "forest"
    assert graph.label("scenes/river").get("kind") == "scene"
