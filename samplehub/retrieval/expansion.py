"""Step 2 of the query: what a query label matches exactly, and its associated labels.

Main paper, section 3.4.1. A query label (a unified label such as ``river``, or a dataset
label such as ``uc_merced_21/river``) stands for one unified label ``u``: itself, or the
label it ``MAPS_TO``. *Exact matches* are the samples whose original label is a dataset
label mapping to ``u`` (``eurosat_rgb/River``), whose ``unified_labels`` hold ``u``, or,
for datasets the label graph has not merged, whose original label is spelled like the
query or ``u``. *Associated labels* are the labels within ``max_distance`` of ``u`` under
Eq. 1 (:func:`samplehub.labels.associated_labels`); each stands for the unified label
whose prototypes step 3 matches, with the path that reached it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from samplehub.errors import LabelGraphError, UnknownLabelError
from samplehub.labels.association import Association
from samplehub.labels.graph import UNIFIED_ORIGINS, LabelGraph
from samplehub.retrieval.snapshot import SampleSnapshot


@dataclass(frozen=True)
class LabelMatch:
    """A resolved query label.

    Attributes:
        query: the label as the user typed it.
        label: its label-graph id.
        unified: the unified label it stands for.
        equivalents: dataset label ids that map to ``unified``.
    """

    query: str
    label: str
    unified: str
    equivalents: tuple[str, ...]


@dataclass(frozen=True)
class ExactGroup:
    """Exact-match rows that share one reason.

    Attributes:
        rows: catalog rows (sorted).
        reason: why they match, in words.
        path: label ids from the unified label to the matching label.
    """

    rows: np.ndarray
    reason: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class PrototypeTarget:
    """A unified label whose prototypes step 3 matches, and how it was reached.

    Attributes:
        label: the unified label id (the ``prototypes`` table's ``label``).
        distance: Eq. 1 distance from the query's unified label.
        path: label ids from the query's unified label to ``label``.
        relations: the relation of each hop.
    """

    label: str
    distance: float
    path: tuple[str, ...]
    relations: tuple[str, ...]

    def describe(self) -> str:
        """``river -[co_occurs]-> bridge`` style path text."""
        text = self.path[0]
        for relation, label in zip(self.relations, self.path[1:], strict=True):
            text += f" -[{relation}]-> {label}"
        return text


def resolve_label(graph: LabelGraph, text: str) -> str:
    """The label-graph id of a query label, by id or name (also ``snake_case`` of it).

    Raises:
        UnknownLabelError: no label has that id or name; the message suggests close names.
        LabelGraphError: the name is ambiguous.
    """
    for candidate in dict.fromkeys((text, text.strip().lower().replace(" ", "_"))):
        try:
            return graph.resolve(candidate)
        except LabelGraphError as exc:
            if "ambiguous" in str(exc):
                raise
    names = sorted({d["name"] for _, d in graph.g.nodes(data=True)} | set(graph.g.nodes))
    close = difflib.get_close_matches(text, names, n=5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownLabelError(
        f"label {text!r} is not in the label graph (version {graph.version}){hint} "
        "List labels with `samplehub labels tree`."
    )


def match_label(graph: LabelGraph, text: str) -> LabelMatch:
    """Resolve ``text`` and collect the dataset labels equivalent to it.

    Raises:
        UnknownLabelError: see :func:`resolve_label`.
    """
    label = resolve_label(graph, text)
    unified = label if graph.is_unified(label) else graph.mapped_to(label) or label
    equivalents = tuple(
        d for d in graph.labels("dataset") if d == label or graph.mapped_to(d) == unified
    )
    return LabelMatch(query=text, label=label, unified=unified, equivalents=equivalents)


def exact_groups(
    graph: LabelGraph, match: LabelMatch, snapshot: SampleSnapshot
) -> list[ExactGroup]:
    """Rows whose original or unified labels match ``match`` exactly, grouped by reason.

    A row matched for several reasons appears once, in the first group that names it.
    """
    unified_name = graph.name_of(match.unified)
    groups = []
    for dataset_label in match.equivalents:
        node = graph.label(dataset_label)
        rows = snapshot.label_rows.get((node["dataset"], node["name"]))
        if rows is not None:
            reason = f"labelled {node['name']!r} in {node['dataset']}"
            if dataset_label != match.unified:
                reason += f", which maps to {unified_name!r}"
            groups.append(ExactGroup(rows, reason, (match.unified, dataset_label)))
    if match.unified in snapshot.unified_rows:
        groups.append(
            ExactGroup(
                snapshot.unified_rows[match.unified],
                f"unified label {unified_name!r}",
                (match.unified,),
            )
        )
    spellings = {match.query, unified_name, match.unified}
    for (dataset, name), rows in snapshot.label_rows.items():
        if name in spellings and f"{dataset}/{name}" not in graph.g:
            groups.append(ExactGroup(rows, f"labelled {name!r} in {dataset}", (match.unified,)))
    seen = np.zeros(len(snapshot), dtype=bool)
    unique = []
    for group in groups:
        rows = group.rows[~seen[group.rows]]
        seen[rows] = True
        unique.append(ExactGroup(rows, group.reason, group.path))
    return unique


def prototype_targets(
    graph: LabelGraph, match: LabelMatch, associations: list[Association]
) -> list[PrototypeTarget]:
    """The unified labels behind the associated labels, nearest first, one entry each.

    A dataset label stands for the unified label it maps to (its path gains that hop; at
    equal distance the shorter path wins); labels standing for the query's own unified
    label are left out (their samples are exact matches).

    Args:
        graph: the label graph.
        match: the resolved query label.
        associations: :func:`samplehub.labels.associated_labels` of ``match.unified``.
    """
    targets: dict[str, PrototypeTarget] = {}
    for a in sorted(associations, key=lambda a: (a.distance, len(a.path), a.label)):
        path, relations, label = a.path, a.relations, a.label
        if a.origin not in UNIFIED_ORIGINS:
            mapped = graph.mapped_to(a.label)
            if mapped is None:
                continue
            path, relations, label = (*path, mapped), (*relations, "maps_to"), mapped
        if label != match.unified and label not in targets:
            targets[label] = PrototypeTarget(label, a.distance, path, relations)
    return sorted(targets.values(), key=nearness)


def nearness(target: PrototypeTarget) -> tuple[float, int, str]:
    """Sort key of targets: Eq. 1 distance, then hops, then label id.

    Eq. 1 makes every subclass of a label as near as the label itself, so going up one
    ``IS_A`` hop puts the parent's whole subtree at one distance (``farmland`` reaches
    ``agriculture_land`` and, through ``woodland``, ``forest`` alike); among equals the
    label fewer hops away is the nearer one in the hierarchy.
    """
    return target.distance, len(target.path), target.label


def nearest_targets(
    targets: list[PrototypeTarget], limit: int | None
) -> tuple[list[PrototypeTarget], list[PrototypeTarget]]:
    """Split targets into the ``limit`` nearest (:func:`nearness`) and the rest.

    Step 3 costs one IVF-PQ query per prototype, so a label with many associated labels
    (``residential_land``: 9 within distance 1) multiplies the query time; the nearest
    associations are the strongest (section 3.4.1), so the cap
    (``RetrievalConfig.max_prototype_labels``) keeps those and the plan names the others.

    Args:
        targets: prototype targets, e.g. from :func:`prototype_targets`.
        limit: how many to keep; None keeps all.

    Returns:
        The kept targets, nearest first, and the left-out ones.

    Raises:
        ValueError: ``limit`` < 0.
    """
    if limit is None:
        return list(targets), []
    if limit < 0:
        raise ValueError(f"max_prototype_labels must be >= 0 or None; got {limit}")
    ordered = sorted(targets, key=nearness)
    return ordered[:limit], ordered[limit:]
