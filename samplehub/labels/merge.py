"""Merging dataset label trees into the label graph (main paper, section 3.3, Algorithm 1).

Algorithm 1 (``merge_new_labels_to_label_category_system``): for each label of a new
dataset's tree, ``get_similar_label`` finds the most similar labels of the category
system and similarity relations are created to those above a threshold. Our steps, per
dataset label ``l`` (parents first):

1. add ``l`` as a ``dataset`` node; the dataset's own hierarchy becomes ``IS_A`` edges;
2. k-NN over the text embeddings of the unified labels (``base`` + ``unified``): the
   ``k`` nearest by cosine are the candidates;
3. score each candidate ``c``: ``score = a * text_sim + b * struct_sim`` (section 3.3.1,
   weighted combination) with ``a + b = 1``; when either label has no OSM match the
   structural term is undefined and ``score = text_sim`` (the "why" column says so);
4. ``SIMILAR {score, text_sim, struct_sim}`` edges to candidates of the same kind with
   ``score >= similar_threshold``; ``MAPS_TO`` to the best of them when ``score >=
   map_threshold``; else ``MAPS_TO`` the unified label that has ``l``'s canonical name,
   of either kind (a grown label joins its namesake); otherwise ``l`` becomes a new
   ``unified`` label (the system grows)
   placed under the unified label of its dataset parent, else under the best candidate
   that is *broader* in the SKOS sense (it shares an OSM tag with ``l`` and has no
   qualifier while ``l`` has one: ``sparse residential`` under ``residential_land``),
   else under the best non-leaf candidate scoring at least ``similar_threshold``;
5. the human override file wins: ``pin`` forces a mapping, ``forbid`` removes a
   candidate before scoring decides;
6. a new unified label gets ``RELATED {score, evidence}`` edges to the unified labels it
   is structurally related to in the OSM Semantic Network (:func:`relate_unified`); the
   base graph gets them between base labels. They do not take part in the mapping; they
   give Eq. 1 paths between labels the wiki cites together (river - bridge).

Kinds (section 3.3.2: parent-child, similarity and spatial adjacency are different
relations): a scene dataset's class says what a whole image is; the labels of a
multi-label set (UC Merced multi-label ``trees``, BigEarthNet's CORINE classes) say what
an image contains. Scores map a label only to unified labels of its own kind, so
``trees`` grows a land-cover label of its own instead of mapping to the scene ``forest``
(whose exact matches would otherwise be every residential scene with trees); the two are
joined by ``RELATED`` and by the ``CO_OCCURS`` counts of the catalog's multi-label samples
(:mod:`samplehub.labels.cooccurrence`). Names are matched without ordinal prefixes
(RSSCN7's ``cIndustry``, :func:`samplehub.labels.names.strip_ordinals`).

The graph passed in is never modified: :func:`merge_label_tree` returns a new graph, so a
failure leaves no half-merged version behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from samplehub.errors import LabelGraphError
from samplehub.labels.embeddings import TextEmbedder
from samplehub.labels.graph import (
    IS_A,
    KINDS,
    MAPS_TO,
    RELATED,
    SCENE,
    SIMILAR,
    UNIFIED_ORIGINS,
    LabelGraph,
)
from samplehub.labels.names import canonical_name, display_phrase, strip_ordinals
from samplehub.labels.osm import OsmSemanticNetwork, TagMatch
from samplehub.labels.taxonomy import BASE_DATASET, BaseLabel
from samplehub.labels.text import AugmentedLabel, augment_label

_DATASET_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class MergeSettings:
    """Parameters of Algorithm 1 (``conf/graph/*.yaml``, key ``merge``).

    Attributes:
        k: candidates per label from the k-NN over text embeddings.
        text_weight: ``a``; the structural weight ``b`` is ``1 - a``.
        map_threshold: minimum score for ``MAPS_TO`` an existing unified label.
        similar_threshold: minimum score for a ``SIMILAR`` edge.
        related_threshold: minimum structural similarity for a ``RELATED`` edge.
        augment_weight: weight of the OSM-augmented text vector added to the name vector.
        definition_sentences: OSM definition sentences kept per label.
    """

    k: int = 10
    text_weight: float = 0.7
    map_threshold: float = 0.8
    similar_threshold: float = 0.6
    related_threshold: float = 0.3
    augment_weight: float = 0.5
    definition_sentences: int = 2

    def __post_init__(self) -> None:
        if self.k < 1:
            raise LabelGraphError(f"merge.k must be >= 1, got {self.k}")
        if not 0 <= self.text_weight <= 1:
            raise LabelGraphError(f"merge.text_weight must be in [0, 1], got {self.text_weight}")
        if not 0 < self.related_threshold <= 1:
            raise LabelGraphError(
                f"merge.related_threshold must be in (0, 1], got {self.related_threshold}"
            )
        if self.similar_threshold > self.map_threshold:
            raise LabelGraphError(
                f"merge.similar_threshold ({self.similar_threshold}) must not exceed "
                f"merge.map_threshold ({self.map_threshold})"
            )

    @property
    def struct_weight(self) -> float:
        """``b = 1 - a``."""
        return 1.0 - self.text_weight


@dataclass(frozen=True)
class Overrides:
    """Human decisions that win over scores (``conf/label_overrides.yaml``).

    ``pin[(dataset, label)] = unified id`` forces a mapping; ``forbid`` holds
    ``(dataset, label, unified id)`` triples that must never map or be similar;
    ``place[(dataset, label)] = unified id`` is the parent (``IS_A``) of the new unified
    label a dataset label grows into when nothing is similar enough to map to. A dataset
    of ``"*"`` applies to every dataset.
    """

    pin: dict[tuple[str, str], str] = field(default_factory=dict)
    forbid: frozenset[tuple[str, str, str]] = frozenset()
    place: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Overrides:
        """Read the override file; a missing file means no overrides.

        Raises:
            LabelGraphError: the file is malformed (the message names the entry).
        """
        path = Path(path)
        if not path.is_file():
            return cls()
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        target_key = {"pin": "to", "forbid": "to", "place": "under"}
        if not isinstance(raw, dict) or set(raw) - set(target_key):
            raise LabelGraphError(f"{path}: top-level keys must be 'pin', 'forbid' and 'place'")
        pin: dict[tuple[str, str], str] = {}
        forbid: set[tuple[str, str, str]] = set()
        place: dict[tuple[str, str], str] = {}
        for section, entries in raw.items():
            key = target_key[section]
            for i, entry in enumerate(entries or []):
                if not isinstance(entry, dict) or not {"dataset", "label", key} <= set(entry):
                    raise LabelGraphError(
                        f"{path}: {section}[{i}] needs 'dataset', 'label' and '{key}'"
                    )
                triple = (str(entry["dataset"]), str(entry["label"]), str(entry[key]))
                if section == "forbid":
                    forbid.add(triple)
                else:
                    (pin if section == "pin" else place)[triple[:2]] = triple[2]
        return cls(pin, frozenset(forbid), place)

    def pinned(self, dataset: str, label: str) -> str | None:
        """Pinned unified id of a dataset label, if any."""
        return self.pin.get((dataset, label)) or self.pin.get(("*", label))

    def placed_under(self, dataset: str, label: str) -> str | None:
        """Parent the override file gives a dataset label's new unified label, if any."""
        return self.place.get((dataset, label)) or self.place.get(("*", label))

    def forbidden(self, dataset: str, label: str, target: str) -> bool:
        """Whether mapping ``label`` of ``dataset`` to ``target`` is forbidden."""
        return (dataset, label, target) in self.forbid or ("*", label, target) in self.forbid


@dataclass(frozen=True)
class Score:
    """Similarity of a label pair (section 3.3.1)."""

    text: float
    struct: float | None
    combined: float


class LabelSemantics:
    """Text and structural similarity of labels: OSM augmentation + embeddings.

    Args:
        network: the OSM Semantic Network (``None``: bare names, no structural term).
        embedder: text embedder.
        vocabulary: words for segmenting glued names.
        settings: merge settings (weights, augmentation).
    """

    def __init__(
        self,
        network: OsmSemanticNetwork | None,
        embedder: TextEmbedder,
        vocabulary: frozenset[str],
        settings: MergeSettings,
    ) -> None:
        self.network = network
        self.embedder = embedder
        self.vocabulary = vocabulary
        self.settings = settings

    def augment(self, name: str, alias: str | None = None) -> AugmentedLabel:
        """OSM-augmented text of a label name."""
        return augment_label(
            name,
            self.network,
            self.vocabulary,
            alias=alias,
            max_sentences=self.settings.definition_sentences,
        )

    def vectors(self, labels: list[AugmentedLabel]) -> np.ndarray:
        """Text vectors ``(n, d)``: unit(name vector + augment_weight * augmented vector)."""
        names = self.embedder.embed([display_phrase(a.name, self.vocabulary) for a in labels])
        augmented = self.embedder.embed([a.text for a in labels])
        mixed = names + self.settings.augment_weight * augmented
        return (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)

    def combine(self, text: float, match_a: TagMatch, match_b: TagMatch) -> Score:
        """``a * text + b * struct``; text only when a side has no OSM tags.

        ``struct`` is the qualifier-aware label-level structural similarity
        (:meth:`OsmSemanticNetwork.structural_similarity`). With ``a = 0`` (structure
        only, used by the benchmark) a pair without OSM tags scores 0: there is no
        structural evidence.
        """
        struct = self.network.structural_similarity(match_a, match_b) if self.network else None
        if struct is None:
            return Score(text, None, text if self.settings.text_weight > 0 else 0.0)
        s = self.settings
        return Score(text, struct, s.text_weight * text + s.struct_weight * struct)


def tag_match(graph: LabelGraph, label_id: str) -> TagMatch:
    """The OSM match stored on a label node (graphs stored before qualifiers: none)."""
    data = graph.g.nodes[label_id]
    return TagMatch(tuple(data.get("osm_uris", ())), tuple(data.get("osm_qualifier", ())))


@dataclass(frozen=True)
class MappingRow:
    """How one dataset label was mapped (one row of ``samplehub labels map``)."""

    dataset_label: str
    unified: str
    score: float
    text_sim: float
    struct_sim: float | None
    why: str
    new: bool


def build_base_graph(base: list[BaseLabel], semantics: LabelSemantics) -> LabelGraph:
    """The base graph: Million-AID labels with descriptions, embeddings and ``IS_A`` edges.

    Each base label's description is its augmented text; the ``IS_A`` edge carries the
    pair's similarity (Eq. 1 turns it into the parent distance) and ``uncertain`` for
    the ten unconfirmed leaf placements.
    """
    graph = LabelGraph()
    augmented = [semantics.augment(label.name) for label in base]
    vectors = semantics.vectors(augmented)
    index = {label.name: i for i, label in enumerate(base)}
    for label, aug, vector in zip(base, augmented, vectors, strict=True):
        graph.add_label(
            label.name,
            label.name,
            "base",
            level=label.level,
            dataset=BASE_DATASET,
            description=aug.text,
            embedding=vector.tolist(),
            osm_tags=list(aug.osm_tags),
            osm_uris=list(aug.osm_uris),
            osm_qualifier=list(aug.osm_qualifier),
            uncertain=label.uncertain,
        )
    for label in base:
        if label.parent is None:
            continue
        i, j = index[label.name], index[label.parent]
        score = semantics.combine(
            float(vectors[i] @ vectors[j]), augmented[i].tag_match, augmented[j].tag_match
        )
        graph.add_edge(
            label.name,
            label.parent,
            IS_A,
            score=max(score.combined, 1e-3),
            uncertain=label.uncertain,
        )
    for i, label in enumerate(base):
        relate_unified(graph, label.name, semantics, [b.name for b in base[i + 1 :]])
    return graph


def relate_unified(
    graph: LabelGraph, label_id: str, semantics: LabelSemantics, others: list[str]
) -> None:
    """``RELATED`` edges from a unified label to the ``others`` it is structurally related to.

    Section 3.3.1: structural similarity is "the degree of association between two label
    entities within the geographic knowledge graph". Two unified labels whose OSM tags
    the wiki cites together (co-citation, qualifier-aware, see
    :meth:`OsmSemanticNetwork.structural_similarity`) at or above
    ``related_threshold`` get ``RELATED {score, evidence: "osm_cocitation"}``; Eq. 1 reads
    it like ``SIMILAR`` (distance ``alpha / score``). Pairs already joined by ``IS_A`` are
    skipped (the hierarchy says more), as are labels without OSM tags.

    Args:
        graph: the graph being built (modified in place).
        label_id: a base or unified label.
        semantics: holds the OSM network and ``related_threshold``; no network, no edges.
        others: unified labels to relate it to.
    """
    if semantics.network is None:
        return
    own = tag_match(graph, label_id)
    linked = set(graph.parents(label_id)) | set(graph.children(label_id))
    for other in others:
        if other == label_id or other in linked:
            continue
        struct = semantics.network.structural_similarity(own, tag_match(graph, other))
        if struct is not None and struct >= semantics.settings.related_threshold:
            graph.add_edge(
                label_id, other, RELATED, score=round(struct, 6), evidence="osm_cocitation"
            )


def validate_label_tree(
    dataset: str, nodes: list[tuple[str, str | None]], vocabulary: frozenset[str]
) -> None:
    """Reject an empty or malformed tree, duplicate names, unknown parents and cycles.

    Raises:
        LabelGraphError: naming the dataset and the offending label.
    """
    if not _DATASET_KEY.match(dataset):
        raise LabelGraphError(f"dataset key {dataset!r} must match {_DATASET_KEY.pattern}")
    if not nodes:
        raise LabelGraphError(f"label tree of {dataset!r} is empty")
    seen: dict[str, str] = {}
    for i, node in enumerate(nodes):
        if not (isinstance(node, tuple | list) and len(node) == 2 and isinstance(node[0], str)):
            raise LabelGraphError(
                f"label tree of {dataset!r}: node {i} must be (name, parent), got {node!r}"
            )
        name = node[0]
        key = canonical_name(name, vocabulary)
        if key in seen:
            raise LabelGraphError(
                f"label tree of {dataset!r}: {name!r} duplicates {seen[key]!r} "
                f"(both normalise to {key!r})"
            )
        seen[key] = name
    names = {n for n, _ in nodes}
    parent_of = dict(nodes)
    for name, parent in nodes:
        if parent is not None and parent not in names:
            raise LabelGraphError(
                f"label tree of {dataset!r}: parent {parent!r} of {name!r} is not a label"
            )
        walk, steps = parent, 0
        while walk is not None:
            steps += 1
            if walk == name or steps > len(nodes):
                raise LabelGraphError(f"label tree of {dataset!r}: {name!r} is its own ancestor")
            walk = parent_of[walk]


def merge_label_tree(
    graph: LabelGraph,
    dataset: str,
    nodes: list[tuple[str, str | None]],
    semantics: LabelSemantics,
    overrides: Overrides | None = None,
    aliases: dict[str, str] | None = None,
    kind: str = SCENE,
) -> tuple[LabelGraph, list[MappingRow]]:
    """Merge one dataset's label tree into a copy of ``graph`` (Algorithm 1).

    Re-merging a dataset replaces its previous labels (idempotent). Names are matched
    without their ordinal prefixes (:func:`~samplehub.labels.names.strip_ordinals`:
    RSSCN7's ``cIndustry`` is matched as ``Industry``); the dataset label keeps the name
    as shipped, so catalog rows still find it.

    Args:
        graph: the current graph (left unchanged).
        dataset: dataset key, e.g. ``"uc_merced_21"``.
        nodes: ``(name, parent)`` pairs of the dataset's label tree.
        semantics: similarity machinery and settings.
        overrides: human pins and forbids.
        aliases: display names per label, appended to the augmented text.
        kind: ``"scene"`` (one class per image) or ``"land_cover"`` (the object and
            land-cover labels of a multi-label set, see :data:`~samplehub.labels.graph.KINDS`).

    Returns:
        The new graph and one :class:`MappingRow` per dataset label.

    Raises:
        LabelGraphError: invalid tree (see :func:`validate_label_tree`), an unknown
            ``kind``, or a pin to an unknown unified label.
    """
    validate_label_tree(dataset, nodes, semantics.vocabulary)
    if kind not in KINDS:
        raise LabelGraphError(f"label kind of {dataset!r} must be one of {KINDS}, got {kind!r}")
    aliases = aliases or {}
    new = graph.copy()
    _remove_dataset(new, dataset)
    ordered = _parents_first(nodes)
    tree = _TreeMerge(
        dataset=dataset,
        kind=kind,
        ids={name: f"{dataset}/{name}" for name, _ in ordered},
        matched=strip_ordinals([name for name, _ in ordered]),
        semantics=semantics,
        overrides=overrides or Overrides(),
    )
    augmented = [semantics.augment(tree.matched[name], aliases.get(name)) for name, _ in ordered]
    vectors = semantics.vectors(augmented)
    rows: list[MappingRow] = []
    ids = tree.ids
    for (name, parent), aug, vector in zip(ordered, augmented, vectors, strict=True):
        new.add_label(
            ids[name],
            name,
            "dataset",
            dataset=dataset,
            description=aug.text,
            embedding=vector.tolist(),
            osm_tags=list(aug.osm_tags),
            osm_uris=list(aug.osm_uris),
            osm_qualifier=list(aug.osm_qualifier),
            kind=kind,
        )
        if parent is not None:
            pv = np.asarray(new.g.nodes[ids[parent]]["embedding"], dtype=np.float32)
            score = semantics.combine(
                float(vector @ pv), aug.tag_match, tag_match(new, ids[parent])
            )
            new.add_edge(ids[name], ids[parent], IS_A, score=max(score.combined, 1e-3))
        rows.append(_map_one(new, tree, name, parent, aug, vector))
    return new, rows


@dataclass
class _TreeMerge:
    """One dataset's tree while it is merged.

    Attributes:
        dataset: dataset key.
        kind: the kind of every label of the tree.
        ids: label-graph id of each label.
        matched: each name without its ordinal prefix, the name that is matched.
        semantics: similarity machinery and settings.
        overrides: human pins, forbids and placements.
        grown: unified labels this tree has grown so far; the tree's own classes are
            distinct by definition, so its labels never map to them (labels it grew in an
            earlier merge, which other datasets may since have joined, stay candidates).
    """

    dataset: str
    kind: str
    ids: dict[str, str]
    matched: dict[str, str]
    semantics: LabelSemantics
    overrides: Overrides
    grown: set[str] = field(default_factory=set)


def label_kind(graph: LabelGraph, label_id: str) -> str:
    """Kind of a label; labels stored before kinds existed are scene labels."""
    return str(graph.g.nodes[label_id].get("kind") or SCENE)


def _map_one(
    graph: LabelGraph,
    tree: _TreeMerge,
    name: str,
    parent: str | None,
    aug: AugmentedLabel,
    vector: np.ndarray,
) -> MappingRow:
    """``MAPS_TO`` for one dataset label: pinned, mapped by score, joined by name, or grown.

    Scores decide only between labels of the same kind: a land-cover label (``trees``)
    never maps to a scene label (``forest``) however similar the words, and is linked to
    it by ``RELATED`` instead (:func:`_grow`). A label that would grow joins an existing
    unified label of the same canonical name, of either kind (BigEarthNet's ``Pastures``
    joins the ``pasture`` EuroSAT's ``Pasture`` grew).
    """
    semantics, overrides, dataset = tree.semantics, tree.overrides, tree.dataset
    settings = semantics.settings
    label_id = tree.ids[name]
    unified = [u for u in graph.labels(UNIFIED_ORIGINS) if u not in tree.grown]
    matrix = np.asarray([graph.g.nodes[u]["embedding"] for u in unified], dtype=np.float32)
    text = matrix @ vector
    order = np.argsort(-text)[: settings.k]
    candidates = sorted(
        (
            (
                unified[int(i)],
                semantics.combine(float(text[i]), aug.tag_match, tag_match(graph, unified[int(i)])),
            )
            for i in order
        ),
        key=lambda pair: -pair[1].combined,
    )
    allowed = [(t, s) for t, s in candidates if not overrides.forbidden(dataset, name, t)]
    scored = [(t, s) for t, s in allowed if label_kind(graph, t) == tree.kind]
    for target, score in scored:
        if score.combined >= settings.similar_threshold:
            graph.add_edge(
                label_id,
                target,
                SIMILAR,
                score=score.combined,
                text_sim=score.text,
                struct_sim=score.struct,
            )
    pinned = overrides.pinned(dataset, name)
    if pinned is not None:
        if pinned not in graph.g or graph.g.nodes[pinned]["origin"] not in UNIFIED_ORIGINS:
            raise LabelGraphError(
                f"label override pins {dataset}/{name} to {pinned!r}, which is not a unified label"
            )
        score = semantics.combine(
            float(np.asarray(graph.g.nodes[pinned]["embedding"]) @ vector),
            aug.tag_match,
            tag_match(graph, pinned),
        )
        return _maps_to(graph, label_id, pinned, score, "pinned by the label override file", False)
    best = scored[0] if scored else None
    if best is not None and best[1].combined >= settings.map_threshold:
        return _maps_to(graph, label_id, best[0], best[1], _why(best[1], aug, settings), False)
    namesake = canonical_name(tree.matched[name], semantics.vocabulary)
    if (
        namesake in graph.g
        and graph.g.nodes[namesake]["origin"] in UNIFIED_ORIGINS
        and namesake not in tree.grown
        and not overrides.forbidden(dataset, name, namesake)
    ):
        score = semantics.combine(
            float(np.asarray(graph.g.nodes[namesake]["embedding"]) @ vector),
            aug.tag_match,
            tag_match(graph, namesake),
        )
        why = f"joins existing unified label {namesake!r} by name ({_why(score, aug, settings)})"
        return _maps_to(graph, label_id, namesake, score, why, False)
    placed = overrides.placed_under(dataset, name)
    if placed is not None and (
        placed not in graph.g or graph.g.nodes[placed]["origin"] not in UNIFIED_ORIGINS
    ):
        raise LabelGraphError(
            f"label override places {dataset}/{name} under {placed!r}, which is not a unified label"
        )
    return _grow(graph, tree, name, parent, aug, vector, candidates, placed)


def _maps_to(
    graph: LabelGraph, label_id: str, target: str, score: Score, why: str, new: bool
) -> MappingRow:
    graph.add_edge(
        label_id,
        target,
        MAPS_TO,
        score=max(score.combined, 1e-3),
        text_sim=score.text,
        struct_sim=score.struct,
        why=why,
    )
    return MappingRow(label_id, target, score.combined, score.text, score.struct, why, new)


def _why(score: Score, aug: AugmentedLabel, settings: MergeSettings) -> str:
    if score.struct is None:
        reason = "no OSM match" if not aug.osm_tags else "target has no OSM match"
        return f"text {score.text:.2f} ({reason}, text only)"
    return (
        f"{settings.text_weight:.2f}*text {score.text:.2f} + {settings.struct_weight:.2f}*struct "
        f"{score.struct:.2f} via {', '.join(aug.osm_tags[:2])}"
    )


def _grow(
    graph: LabelGraph,
    tree: _TreeMerge,
    name: str,
    parent: str | None,
    aug: AugmentedLabel,
    vector: np.ndarray,
    candidates: list[tuple[str, Score]],
    placed: str | None = None,
) -> MappingRow:
    """A new unified label for a dataset label that matched nothing (the system grows).

    Its parent: ``placed`` (the override file's ``place``), else the unified label of its
    dataset parent, else a broader OSM tag's label, else the best similar candidate that
    has children; candidates of another kind are never parents. Placement may use a
    candidate the override file forbids as a *mapping* target: a forbidden synonym can
    still be the right parent (medium residential IS_A residential). Candidates of the
    other kind scoring at least ``similar_threshold`` get ``RELATED {score, evidence:
    "label_similarity"}`` (UC Merced multi-label ``trees`` - ``forest``).
    """
    semantics = tree.semantics
    settings = semantics.settings
    label_id = tree.ids[name]
    own_kind = [(t, s) for t, s in candidates if label_kind(graph, t) == tree.kind]
    scored = [(t, s) for t, s in own_kind if not tree.overrides.forbidden(tree.dataset, name, t)]
    base_id = canonical_name(tree.matched[name], semantics.vocabulary)
    unified_id, suffix = base_id, 2
    while unified_id in graph.g:
        unified_id = f"{base_id}_{suffix}"
        suffix += 1
    graph.add_label(
        unified_id,
        unified_id,
        "unified",
        dataset=tree.dataset,
        description=aug.text,
        embedding=vector.tolist(),
        osm_tags=list(aug.osm_tags),
        osm_uris=list(aug.osm_uris),
        osm_qualifier=list(aug.osm_qualifier),
        kind=tree.kind,
    )
    tree.grown.add(unified_id)
    home = placed
    if home is None and parent is not None:
        home = graph.mapped_to(tree.ids[parent])
    if home is None and aug.osm_qualifier:
        broader = [
            t
            for t, _ in own_kind
            if set(aug.osm_uris) & set(graph.g.nodes[t]["osm_uris"])
            and not tag_match(graph, t).qualifier
        ]
        home = broader[0] if broader else None
    if home is None:
        inner = [
            (t, s)
            for t, s in own_kind
            if graph.children(t) and s.combined >= settings.similar_threshold
        ]
        home = inner[0][0] if inner else None
    if home is not None:
        home_score = dict(candidates).get(home)
        graph.add_edge(
            unified_id,
            home,
            IS_A,
            score=max(home_score.combined if home_score else settings.similar_threshold, 1e-3),
        )
    for target, score in candidates:
        if (
            label_kind(graph, target) != tree.kind
            and score.combined >= settings.similar_threshold
            and not tree.overrides.forbidden(tree.dataset, name, target)
        ):
            graph.add_edge(
                unified_id,
                target,
                RELATED,
                score=round(score.combined, 6),
                evidence="label_similarity",
            )
    relate_unified(graph, unified_id, semantics, graph.labels(UNIFIED_ORIGINS))
    best = (
        f"best candidate {scored[0][0]!r} scored {scored[0][1].combined:.2f}"
        if scored
        else "no candidate"
    )
    where = f", placed under {home!r}" if home else ", no parent found"
    if placed is not None:
        where += " by the label override file"
    why = f"new unified label: {best} < map threshold {settings.map_threshold:.2f}{where}"
    return _maps_to(graph, label_id, unified_id, Score(1.0, None, 1.0), why, True)


def _remove_dataset(graph: LabelGraph, dataset: str) -> None:
    own = graph.labels("dataset", dataset=dataset)
    grown = [
        n
        for n in graph.labels("unified")
        if graph.g.nodes[n]["dataset"] == dataset
        and all(
            graph.g.nodes[u]["dataset"] == dataset
            for u, _, d in graph.g.in_edges(n, data=True)
            if d["type"] == MAPS_TO
        )
    ]
    graph.remove_labels(own + grown)


def _parents_first(nodes: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    placed: set[str] = set()
    ordered: list[tuple[str, str | None]] = []
    pending = list(nodes)
    while pending:
        ready = [(n, p) for n, p in pending if p is None or p in placed]
        ordered.extend(ready)
        placed.update(n for n, _ in ready)
        pending = [node for node in pending if node[0] not in placed]
    return ordered


def mapping_table(graph: LabelGraph, dataset: str) -> list[MappingRow]:
    """Mapping rows of a dataset already merged into ``graph`` (from its ``MAPS_TO`` edges).

    Raises:
        LabelGraphError: the dataset is not in the graph.
    """
    labels = graph.labels("dataset", dataset=dataset)
    if not labels:
        raise LabelGraphError(
            f"dataset {dataset!r} is not in the label graph; merge it first "
            f"('samplehub labels merge-taxonomy {dataset}'); merged: {graph.datasets()}"
        )
    rows: list[MappingRow] = []
    for label_id in labels:
        edge = graph.mapping_edge(label_id)
        if edge is None:
            raise LabelGraphError(f"dataset label {label_id!r} has no MAPS_TO edge")
        props: dict[str, Any] = edge.props
        new = (
            graph.g.nodes[edge.target]["origin"] == "unified"
            and graph.g.nodes[edge.target]["dataset"] == dataset
        )
        rows.append(
            MappingRow(
                label_id,
                edge.target,
                float(props["score"]),
                float(props["text_sim"]),
                props.get("struct_sim"),
                str(props.get("why", "")),
                new,
            )
        )
    return rows
