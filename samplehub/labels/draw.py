"""A picture of a label's neighbourhood in the label graph (CLI ``samplehub labels draw``)."""

from __future__ import annotations

from pathlib import Path

from samplehub.labels.association import AssociationWeights, associated_labels
from samplehub.labels.graph import LabelGraph

_COLOURS = {
    "IS_A": "#555555",
    "SIMILAR": "#1f77b4",
    "RELATED": "#9467bd",
    "CO_OCCURS": "#d62728",
    "MAPS_TO": "#2ca02c",
}
_NODE_COLOURS = {"base": "#ffd27f", "unified": "#ffb0b0", "dataset": "#c6dbef"}


def draw_neighbourhood(
    graph: LabelGraph,
    label: str,
    out: str | Path,
    max_distance: float,
    weights: AssociationWeights | None = None,
) -> Path:
    """Draw the labels associated with ``label`` (Eq. 1 distance <= ``max_distance``).

    Nodes are coloured by origin (base / grown unified / dataset), edges by type; the
    query label is outlined. The format follows the suffix of ``out`` (``.png``, ``.svg``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    source = graph.resolve(label)
    found = associated_labels(graph, source, max_distance, weights)
    keep = {source, *(a.label for a in found)}
    sub = graph.g.subgraph(keep)
    layout = nx.spring_layout(nx.Graph(sub), seed=7, k=1.2)
    fig, ax = plt.subplots(figsize=(12, 9))
    for type_, colour in _COLOURS.items():
        edges = [(u, v) for u, v, d in sub.edges(data=True) if d["type"] == type_]
        nx.draw_networkx_edges(
            sub,
            layout,
            edgelist=edges,
            edge_color=colour,
            ax=ax,
            arrows=True,
            alpha=0.7,
            label=type_,
        )
    colours = [_NODE_COLOURS[sub.nodes[n]["origin"]] for n in sub.nodes]
    widths = [3.0 if n == source else 0.5 for n in sub.nodes]
    nx.draw_networkx_nodes(
        sub, layout, node_color=colours, edgecolors="black", linewidths=widths, node_size=500, ax=ax
    )
    nx.draw_networkx_labels(sub, layout, font_size=7, ax=ax)
    ax.set_title(f"labels within distance {max_distance} of {source!r} (graph v{graph.version})")
    if ax.get_legend_handles_labels()[0]:  # a label with no associations draws no edges
        ax.legend(loc="lower left", fontsize=8)
    ax.axis("off")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out
