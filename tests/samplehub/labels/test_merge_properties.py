"""Algorithm 1's invariants on generated label trees (Hypothesis, real text model).

Whatever tree a dataset brings (real class names, made-up words, any nesting), merging
it keeps IS_A acyclic, maps every dataset label to exactly one unified label, leaves the
input graph untouched, and gives the same graph and rows when run again, on the original
graph or on its own result.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samplehub.labels.graph import IS_A, MAPS_TO, LabelGraph
from samplehub.labels.merge import LabelSemantics, build_base_graph, merge_label_tree
from samplehub.labels.names import canonical_name
from samplehub.labels.taxonomy import BaseLabel

BASE = [
    BaseLabel("water_area", 1, None),
    BaseLabel("vegetation", 1, None),
    BaseLabel("built_up_area", 1, None),
    BaseLabel("river", 2, "water_area"),
    BaseLabel("lake", 2, "water_area"),
    BaseLabel("forest", 2, "vegetation"),
    BaseLabel("farmland", 2, "vegetation"),
    BaseLabel("residential_area", 2, "built_up_area"),
    BaseLabel("airport_area", 2, "built_up_area"),
    BaseLabel("runway", 3, "airport_area", uncertain=True),
]
REAL_NAMES = ["River", "Lakes", "forest", "dense residential", "Airport", "runway",
              "AnnualCrop", "harbor", "beach", "sparse_residential", "Pasture", "freeway"]
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10)


@st.composite
def label_trees(draw: st.DrawFn) -> list[tuple[str, str | None]]:
    """1-7 labels with distinct normalised names, each under nothing or an earlier label."""
    names = draw(st.lists(st.one_of(st.sampled_from(REAL_NAMES), WORDS), min_size=1,
                          max_size=7))
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(canonical_name(name), name)
    nodes: list[tuple[str, str | None]] = []
    for name in unique.values():
        earlier = [n for n, _ in nodes]
        parent = draw(st.one_of(st.none(), st.sampled_from(earlier))) if earlier else None
        nodes.append((name, parent))
    return nodes


def snapshot(graph: LabelGraph) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Labels and typed edges of a graph, sorted (embeddings and scores aside)."""
    nodes, edges = graph.to_records()
    return (sorted(n["id"] for n in nodes),
            sorted((e["source"], e["target"], e["type"]) for e in edges))


@pytest.fixture()
def base(bare_semantics: LabelSemantics) -> LabelGraph:
    return build_base_graph(BASE, bare_semantics)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nodes=label_trees())
def test_any_tree_merges_acyclic_fully_mapped_and_deterministic(
    base: LabelGraph, bare_semantics: LabelSemantics, nodes: list[tuple[str, str | None]]
) -> None:
    before = snapshot(base)
    merged, rows = merge_label_tree(base, "gen", nodes, bare_semantics)

    assert merged.is_a_cycle() is None
    assert merged.unmapped_labels() == []
    assert sorted(r.dataset_label for r in rows) == sorted(f"gen/{name}" for name, _ in nodes)
    for name, parent in nodes:
        label = f"gen/{name}"
        maps = [e for e in merged.edges(MAPS_TO) if e.source == label]
        assert len(maps) == 1 and merged.is_unified(maps[0].target), (label, maps)
        if parent is not None:
            assert merged.parents(label) == [f"gen/{parent}"]
    assert all(merged.is_unified(e.target) == merged.is_unified(e.source)
               for e in merged.edges(IS_A) if not merged.dataset_of(e.source))
    assert snapshot(base) == before  # the input graph is left as it was

    again, rows_again = merge_label_tree(base, "gen", nodes, bare_semantics)
    assert rows_again == rows and snapshot(again) == snapshot(merged)
    remerged, rows_remerged = merge_label_tree(merged, "gen", nodes, bare_semantics)
    assert rows_remerged == rows and snapshot(remerged) == snapshot(merged)
