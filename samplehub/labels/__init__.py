"""The dynamic label category graph (main paper, sections 3.3 and 3.4.1).

Base taxonomy (Million-AID) -> OSM-augmented text + co-citation structure -> Algorithm 1
merges dataset label trees (``SIMILAR`` / ``MAPS_TO``, growing unified labels) ->
``CO_OCCURS`` from multi-label samples -> Eq. 1 weighted shortest paths give each label's
associated labels. Stored in an embedded Delta-backed store or in Neo4j.

Heavy pieces (the embedding model, the Neo4j driver, matplotlib) are imported inside the
functions that need them, so importing this package is cheap and never imports Dagster.
"""

from samplehub.labels.association import Association, AssociationWeights, associated_labels
from samplehub.labels.graph import CO_OCCURS, IS_A, MAPS_TO, SIMILAR, LabelGraph
from samplehub.labels.merge import (
    LabelSemantics,
    MappingRow,
    MergeSettings,
    Overrides,
    build_base_graph,
    mapping_table,
    merge_label_tree,
)
from samplehub.labels.osm import OSM_ATTRIBUTION, OsmSemanticNetwork
from samplehub.labels.store import EmbeddedLabelGraphStore, GraphVersion, LabelGraphStore

__all__ = [
    "CO_OCCURS",
    "IS_A",
    "MAPS_TO",
    "OSM_ATTRIBUTION",
    "SIMILAR",
    "Association",
    "AssociationWeights",
    "EmbeddedLabelGraphStore",
    "GraphVersion",
    "LabelGraph",
    "LabelGraphStore",
    "LabelSemantics",
    "MappingRow",
    "MergeSettings",
    "OsmSemanticNetwork",
    "Overrides",
    "associated_labels",
    "build_base_graph",
    "mapping_table",
    "merge_label_tree",
]
