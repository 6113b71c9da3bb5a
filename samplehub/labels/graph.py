"""The label category graph: labels as nodes, typed relations as edges.

Main paper, section 3.3.2 and Figure 4: labels and their relations (parent-child,
semantic similarity, spatial adjacency) are stored as a graph. DESIGN.md section 4 fixes
the model:

* nodes ``Label {id, name, level, origin, dataset, description, embedding, kind}`` where
  ``origin`` is ``base`` (Million-AID), ``dataset`` (a dataset's own label) or
  ``unified`` (a unified label the system grew because a dataset label matched nothing),
  and ``kind`` is ``scene`` (a class naming the whole image; the base taxonomy) or
  ``land_cover`` (an object or land-cover label of a multi-label set, naming what the
  image contains); nodes without ``kind`` are scene labels;
* edges ``IS_A`` (child -> parent), ``SIMILAR {score, text_sim, struct_sim}``,
  ``RELATED {score, evidence}`` (structural relatedness of two unified labels in the OSM
  Semantic Network, see :func:`samplehub.labels.merge.relate_unified`),
  ``CO_OCCURS {count, weight, evidence}`` and ``MAPS_TO`` (dataset label -> unified label).

Base and unified labels have ids equal to their ``snake_case`` name (``river``);
dataset labels have ids ``<dataset>/<name>`` (``uc_merced_21/river``). The graph is held
in a :class:`networkx.MultiDiGraph` whose edge keys are the relation type (plus the
evidence source for ``CO_OCCURS``), so a pair has at most one edge of each type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from samplehub.errors import LabelGraphError

IS_A = "IS_A"
SIMILAR = "SIMILAR"
RELATED = "RELATED"
CO_OCCURS = "CO_OCCURS"
MAPS_TO = "MAPS_TO"
EDGE_TYPES = (IS_A, SIMILAR, RELATED, CO_OCCURS, MAPS_TO)
ORIGINS = ("base", "dataset", "unified")
UNIFIED_ORIGINS = ("base", "unified")
SCENE = "scene"
LAND_COVER = "land_cover"
KINDS = (SCENE, LAND_COVER)


@dataclass(frozen=True)
class Edge:
    """One typed edge as a plain record."""

    source: str
    target: str
    type: str
    props: dict[str, Any]


class LabelGraph:
    """A versionable label category graph.

    Label properties are read through :meth:`label`, :meth:`origin`, :meth:`dataset_of`,
    :meth:`is_unified`, :meth:`name_of`, :meth:`kind_of` and :meth:`embedding`, not
    through ``g.nodes``; ``g`` is there for graph algorithms (paths, cycles).

    Attributes:
        g: the underlying ``MultiDiGraph``; node attributes are the ``Label`` properties.
        version: the store version this graph was loaded from or committed as (0: never).
    """

    def __init__(self, g: nx.MultiDiGraph | None = None, version: int = 0) -> None:
        self.g: nx.MultiDiGraph = g if g is not None else nx.MultiDiGraph()
        self.version = version

    def __contains__(self, label_id: object) -> bool:
        """Whether a label with this id is in the graph."""
        return label_id in self.g

    # -- nodes -------------------------------------------------------------------------
    def add_label(
        self,
        label_id: str,
        name: str,
        origin: str,
        *,
        level: int | None = None,
        dataset: str | None = None,
        description: str = "",
        **props: Any,
    ) -> None:
        """Add (or replace the properties of) one label.

        Raises:
            LabelGraphError: unknown ``origin`` or an empty id.
        """
        if origin not in ORIGINS:
            raise LabelGraphError(
                f"label {label_id!r}: origin must be one of {ORIGINS}, got {origin!r}"
            )
        if not label_id:
            raise LabelGraphError(f"label {name!r} has an empty id")
        self.g.add_node(
            label_id,
            name=name,
            origin=origin,
            level=level,
            dataset=dataset,
            description=description,
            **props,
        )

    def label(self, label_id: str) -> dict[str, Any]:
        """Properties of one label, with its ``id``.

        Raises:
            LabelGraphError: no such label.
        """
        return {"id": label_id, **self._node(label_id)}

    def origin(self, label_id: str) -> str:
        """``base``, ``dataset`` or ``unified`` (see :data:`ORIGINS`).

        Raises:
            LabelGraphError: no such label.
        """
        return str(self._node(label_id)["origin"])

    def dataset_of(self, label_id: str) -> str | None:
        """Dataset of a label: a dataset label's own, the grower of a unified label.

        Base labels belong to ``million_aid``.

        Raises:
            LabelGraphError: no such label.
        """
        dataset = self._node(label_id).get("dataset")
        return None if dataset is None else str(dataset)

    def is_unified(self, label_id: str) -> bool:
        """Whether ``label_id`` is a label of the category system (``base`` or ``unified``).

        An id that is not in the graph is not a unified label (no error).
        """
        return label_id in self and self.g.nodes[label_id]["origin"] in UNIFIED_ORIGINS

    def name_of(self, label_id: str) -> str:
        """Display name of a label (as shipped for dataset labels).

        Raises:
            LabelGraphError: no such label.
        """
        return str(self._node(label_id)["name"])

    def kind_of(self, label_id: str) -> str:
        """``scene`` or ``land_cover`` (see :data:`KINDS`); unmarked labels are scene labels.

        Labels stored before kinds existed have no ``kind`` and are scene labels.

        Raises:
            LabelGraphError: no such label.
        """
        return str(self._node(label_id).get("kind") or SCENE)

    def embedding(self, label_id: str) -> Sequence[float]:
        """Text embedding of a label as stored, ``d`` floats (section 3.3.1); read-only.

        Raises:
            LabelGraphError: no such label.
        """
        vector: Sequence[float] = self._node(label_id)["embedding"]
        return vector

    def _node(self, label_id: str) -> dict[str, Any]:
        """The attribute dict of one label (owned by the graph: read, never handed out).

        Raises:
            LabelGraphError: no such label.
        """
        if label_id not in self:
            raise LabelGraphError(f"label {label_id!r} is not in the label graph")
        node: dict[str, Any] = self.g.nodes[label_id]
        return node

    def labels(
        self, origin: str | tuple[str, ...] | None = None, dataset: str | None = None
    ) -> list[str]:
        """Label ids, optionally filtered by origin(s) and dataset, in insertion order."""
        origins = (origin,) if isinstance(origin, str) else origin
        return [
            n
            for n, data in self.g.nodes(data=True)
            if (origins is None or data["origin"] in origins)
            and (dataset is None or (data["origin"] == "dataset" and data["dataset"] == dataset))
        ]

    def datasets(self) -> list[str]:
        """Datasets merged into the graph, in merge order."""
        seen: dict[str, None] = {}
        for n in self.labels("dataset"):
            seen.setdefault(self.g.nodes[n]["dataset"], None)
        return list(seen)

    def resolve(self, label: str) -> str:
        """Id of a label given by id or by name; unified labels win over dataset labels.

        A name shared by several dataset labels that all map to one unified label
        resolves to that label (``harbor`` of UC Merced and of SIRI-WHU, both mapped to
        ``port_area``).

        Raises:
            LabelGraphError: no label has that id or name, or the name is ambiguous.
        """
        if label in self.g:
            return label
        matches = [n for n, d in self.g.nodes(data=True) if d["name"] == label]
        unified = [n for n in matches if self.is_unified(n)]
        if len(unified) == 1:
            return unified[0]
        if len(matches) == 1:
            return matches[0]
        targets = {self.mapped_to(n) for n in matches}
        if not unified and len(targets) == 1 and None not in targets:
            return targets.pop()  # type: ignore[return-value]
        if not matches:
            raise LabelGraphError(
                f"label {label!r} is not in the label graph; "
                "list labels with 'samplehub labels tree'"
            )
        raise LabelGraphError(f"label name {label!r} is ambiguous; use one of the ids {matches}")

    def remove_labels(self, label_ids: list[str]) -> None:
        """Remove labels and their edges."""
        self.g.remove_nodes_from(label_ids)

    # -- edges -------------------------------------------------------------------------
    def add_edge(
        self, source: str, target: str, type: str, key: str | None = None, **props: Any
    ) -> None:
        """Add or replace the ``type`` edge from ``source`` to ``target``.

        Raises:
            LabelGraphError: unknown type or an endpoint not in the graph.
        """
        if type not in EDGE_TYPES:
            raise LabelGraphError(f"edge type must be one of {EDGE_TYPES}, got {type!r}")
        for end in (source, target):
            if end not in self.g:
                raise LabelGraphError(
                    f"{type} edge {source!r} -> {target!r}: label {end!r} is missing"
                )
        self.g.add_edge(source, target, key=key or type, type=type, **props)

    def edges(self, type: str | None = None) -> Iterator[Edge]:
        """Edges, optionally of one type."""
        for u, v, data in self.g.edges(data=True):
            if type is None or data["type"] == type:
                props = {k: val for k, val in data.items() if k != "type"}
                yield Edge(u, v, data["type"], props)

    def parents(self, label_id: str) -> list[str]:
        """``IS_A`` targets of a label."""
        return [v for _, v, d in self.g.out_edges(label_id, data=True) if d["type"] == IS_A]

    def children(self, label_id: str) -> list[str]:
        """Labels with an ``IS_A`` edge to this one."""
        return [u for u, _, d in self.g.in_edges(label_id, data=True) if d["type"] == IS_A]

    def mapped_to(self, label_id: str) -> str | None:
        """The unified label a dataset label ``MAPS_TO``, if any."""
        targets = [v for _, v, d in self.g.out_edges(label_id, data=True) if d["type"] == MAPS_TO]
        return targets[0] if targets else None

    def mapped_from(self, label_id: str) -> list[str]:
        """The dataset labels that ``MAPS_TO`` a unified label."""
        return [u for u, _, d in self.g.in_edges(label_id, data=True) if d["type"] == MAPS_TO]

    def mapping_edge(self, label_id: str) -> Edge | None:
        """The ``MAPS_TO`` edge of a dataset label, if any."""
        for _, v, d in self.g.out_edges(label_id, data=True):
            if d["type"] == MAPS_TO:
                return Edge(label_id, v, MAPS_TO, {k: x for k, x in d.items() if k != "type"})
        return None

    # -- checks ------------------------------------------------------------------------
    def is_a_cycle(self) -> list[str] | None:
        """A cycle of ``IS_A`` edges as a list of ids, or ``None`` when ``IS_A`` is acyclic."""
        tree = nx.DiGraph((e.source, e.target) for e in self.edges(IS_A))
        try:
            return [u for u, _ in nx.find_cycle(tree)]
        except nx.NetworkXNoCycle:
            return None

    def unmapped_labels(self) -> list[str]:
        """Dataset labels without a ``MAPS_TO`` edge."""
        return [n for n in self.labels("dataset") if self.mapped_to(n) is None]

    # -- serialisation -----------------------------------------------------------------
    def to_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Nodes ``{"id", ...}`` and edges ``{"source", "target", "type", "key", ...}``."""
        nodes = [{"id": n, **data} for n, data in self.g.nodes(data=True)]
        edges = [
            {"source": u, "target": v, "key": k, **data}
            for u, v, k, data in self.g.edges(keys=True, data=True)
        ]
        return nodes, edges

    @classmethod
    def from_records(
        cls, nodes: list[dict[str, Any]], edges: list[dict[str, Any]], version: int = 0
    ) -> LabelGraph:
        """Inverse of :meth:`to_records`."""
        graph = cls(version=version)
        for node in nodes:
            props = {"level": None, "dataset": None, "description": "", **node}
            graph.g.add_node(props.pop("id"), **props)
        for edge in edges:
            props = dict(edge)
            source, target, key = props.pop("source"), props.pop("target"), props.pop("key")
            graph.g.add_edge(source, target, key=key, **props)
        return graph

    def copy(self) -> LabelGraph:
        """An independent copy (attribute dicts copied; their values are never mutated in place)."""
        return LabelGraph(self.g.copy(), self.version)

    def export(self, path: str | Path, format: str) -> Path:
        """Write the graph as ``graphml`` or ``json`` (node-link); embeddings are left out.

        Raises:
            LabelGraphError: unknown format.
        """
        path = Path(path)
        export = nx.MultiDiGraph()
        for n, data in self.g.nodes(data=True):
            export.add_node(n, **_flat({k: v for k, v in data.items() if k != "embedding"}))
        for u, v, k, data in self.g.edges(keys=True, data=True):
            export.add_edge(u, v, key=k, **_flat(data))
        if format == "graphml":
            nx.write_graphml(export, path)
        elif format == "json":
            payload = nx.node_link_data(export, edges="edges")
            payload["version"] = self.version
            path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
        else:
            raise LabelGraphError(f"export format must be 'graphml' or 'json', got {format!r}")
        return path


def _flat(props: dict[str, Any]) -> dict[str, Any]:
    """GraphML takes scalars only: lists become ``;``-joined strings, ``None`` is dropped."""
    flat: dict[str, Any] = {}
    for key, value in props.items():
        if value is None:
            continue
        flat[key] = ";".join(map(str, value)) if isinstance(value, list | tuple) else value
    return flat
