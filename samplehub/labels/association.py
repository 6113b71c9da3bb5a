"""Label association by weighted shortest paths (main paper, section 3.4.1, Eq. 1).

Eq. 1 gives the distance weight of an edge between labels A and B by relation type.
The printed equation is an image in our copy of the paper; from its text it reads::

    d(A, B) = 0               if B is a subclass of A
            = alpha / s(A, B) if B is the parent of A, or A and B are similar
            = beta  / f(A, B) if A and B co-occur and f(A, B) >= theta
            = inf             otherwise

with ``s`` the semantic similarity of the pair (the edge ``score``), ``f`` the
co-occurrence frequency (the ``CO_OCCURS`` edge ``weight``), ``alpha``/``beta`` tuning
parameters and ``theta`` a threshold (``conf/graph/*.yaml``, ``association``). Edges
with a non-positive similarity are unusable (infinite distance).

``RELATED`` edges take the "similar" branch, ``alpha / s`` with ``s`` the edge ``score``:
section 3.3.1 defines label similarity as text similarity weighted with the structural
similarity in the geographic knowledge graph ("the degree of association between two
label entities"); a ``RELATED`` edge carries that structural term alone, for unified
labels whose wording differs too much for a ``SIMILAR`` edge but which the OSM wiki
cites together (``river`` and ``bridge``: ``s = 0.37``, distance 2.7).

``MAPS_TO`` (dataset label -> unified label) is read like ``IS_A``: a dataset label's
samples are samples of its unified label (distance 0 from the unified label), and going
from a dataset label to its unified label costs ``alpha / score``.

Labels whose shortest distance from the query label is at most ``max_distance`` are its
*associated labels*; each comes with the path that reached it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import networkx as nx

from samplehub.errors import LabelGraphError
from samplehub.labels.graph import CO_OCCURS, IS_A, MAPS_TO, RELATED, SIMILAR, LabelGraph


@dataclass(frozen=True)
class AssociationWeights:
    """Tuning parameters of Eq. 1.

    Attributes:
        alpha: scale of parent / similar distances (``alpha / s``).
        beta: scale of co-occurrence distances (``beta / f``).
        theta: minimum co-occurrence frequency ``f`` for a ``CO_OCCURS`` edge to count.
        max_distance: default distance bound of an association query (CLI ``labels
            associated`` and ``labels draw``); 3.0 admits one ``similar``/``related``
            hop of score >= 1/3 beyond the query's own subclasses.
    """

    alpha: float = 1.0
    beta: float = 1.0
    theta: float = 0.1
    max_distance: float = 3.0

    def __post_init__(self) -> None:
        """Reject out-of-range settings with a :class:`LabelGraphError` naming the key."""
        for name in ("alpha", "beta"):
            if getattr(self, name) <= 0:
                raise LabelGraphError(f"association.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.theta <= 1:
            raise LabelGraphError(f"association.theta must be in [0, 1], got {self.theta}")
        if self.max_distance < 0:
            raise LabelGraphError(f"association.max_distance must be >= 0, got {self.max_distance}")


@dataclass(frozen=True)
class Association:
    """One associated label.

    Attributes:
        label: label id.
        name: label name.
        origin: ``base``, ``unified`` or ``dataset``.
        dataset: the dataset of a dataset label.
        distance: weighted shortest-path distance from the query label.
        path: label ids from the query label to this one.
        relations: the relation taken at each hop (``subclass``, ``parent``, ``similar``,
            ``related``, ``co_occurs``, ``maps_to``, ``mapped_from``).
    """

    label: str
    name: str
    origin: str
    dataset: str | None
    distance: float
    path: tuple[str, ...]
    relations: tuple[str, ...]


def _score_distance(scale: float, value: object) -> float | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return scale / min(float(value), 1.0)


def distance_graph(graph: LabelGraph, weights: AssociationWeights) -> nx.DiGraph:
    """Directed graph with Eq. 1 distances: attribute ``distance`` and ``relation``.

    Parallel relations between two labels keep the smallest distance.
    """
    out = nx.DiGraph()
    out.add_nodes_from(graph.g.nodes)

    def put(u: str, v: str, distance: float | None, relation: str) -> None:
        if distance is None:
            return
        if not out.has_edge(u, v) or out[u][v]["distance"] > distance:
            out.add_edge(u, v, distance=distance, relation=relation)

    for edge in graph.edges():
        a, b, props = edge.source, edge.target, edge.props
        if edge.type in (IS_A, MAPS_TO):
            put(b, a, 0.0, "subclass" if edge.type == IS_A else "mapped_from")
            put(
                a,
                b,
                _score_distance(weights.alpha, props.get("score")),
                "parent" if edge.type == IS_A else "maps_to",
            )
        elif edge.type in (SIMILAR, RELATED):
            distance = _score_distance(weights.alpha, props.get("score"))
            put(a, b, distance, edge.type.lower())
            put(b, a, distance, edge.type.lower())
        elif edge.type == CO_OCCURS and float(props.get("weight", 0.0)) >= weights.theta:
            distance = _score_distance(weights.beta, props.get("weight"))
            put(a, b, distance, "co_occurs")
            put(b, a, distance, "co_occurs")
    return out


def associated_labels(
    graph: LabelGraph,
    label: str,
    max_distance: float,
    weights: AssociationWeights | None = None,
) -> list[Association]:
    """Labels within ``max_distance`` of ``label`` under Eq. 1, nearest first.

    Args:
        graph: the label graph.
        label: query label id or name (a unified label wins over a dataset label).
        max_distance: distance threshold; ``0`` returns subclasses and mapped labels only.
        weights: Eq. 1 parameters; defaults to :class:`AssociationWeights`.

    Returns:
        Associations without the query label itself, sorted by distance then id.

    Raises:
        LabelGraphError: unknown label or a negative ``max_distance``.
    """
    if max_distance < 0:
        raise LabelGraphError(f"max_distance must be >= 0, got {max_distance}")
    source = graph.resolve(label)
    dist = distance_graph(graph, weights or AssociationWeights())
    lengths, paths = nx.single_source_dijkstra(dist, source, cutoff=max_distance, weight="distance")
    found: list[Association] = []
    for target, length in lengths.items():
        if target == source:
            continue
        path = paths[target]
        data = graph.label(target)
        found.append(
            Association(
                label=target,
                name=data["name"],
                origin=data["origin"],
                dataset=data.get("dataset"),
                distance=float(length),
                path=tuple(path),
                relations=tuple(dist[u][v]["relation"] for u, v in pairwise(path)),
            )
        )
    return sorted(found, key=lambda a: (a.distance, a.label))
