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

In code, :func:`merge_label_tree` runs step 1 for each :class:`LabelToMerge`, then
``_map_one``: rank candidates (steps 2-3) -> apply overrides and thresholds (steps 4-5)
-> place a new label (step 4, the system grows; step 6).

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
    text_weight: float = 0.5
    map_threshold: float = 0.7
    similar_threshold: float = 0.6
    related_threshold: float = 0.3
    augment_weight: float = 0.5
    definition_sentences: int = 2

    def __post_init__(self) -> None:
        """Reject out-of-range settings with a :class:`LabelGraphError` naming the key."""
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
    data = graph.label(label_id)
    return TagMatch(tuple(data.get("osm_uris", ())), tuple(data.get("osm_qualifier", ())))


def node_attrs(aug: AugmentedLabel, vector: np.ndarray) -> dict[str, Any]:
    """Node properties a label gets from its augmented text and its text vector.

    Section 3.3.1: ``description`` is the augmented text, ``embedding`` the vector the
    text similarity is computed on, ``osm_*`` the OSM match the structural similarity
    reads back (:func:`tag_match`). Shared by base, dataset and grown unified labels.
    """
    return {
        "description": aug.text,
        "embedding": vector.tolist(),
        "osm_tags": list(aug.osm_tags),
        "osm_uris": list(aug.osm_uris),
        "osm_qualifier": list(aug.osm_qualifier),
    }


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
            **node_attrs(aug, vector),
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
            ``kind``, or a pin or place override naming no unified label.
    """
    validate_label_tree(dataset, nodes, semantics.vocabulary)
    if kind not in KINDS:
        raise LabelGraphError(f"label kind of {dataset!r} must be one of {KINDS}, got {kind!r}")
    new = graph.copy()
    _remove_dataset(new, dataset)
    tree = _TreeMerge(dataset, kind, semantics, overrides or Overrides())
    rows: list[MappingRow] = []
    for label in _labels_to_merge(dataset, nodes, semantics, aliases or {}):
        _add_dataset_label(new, tree, label)
        rows.append(_map_one(new, tree, label))
    return new, rows


@dataclass(frozen=True, eq=False)
class LabelToMerge:
    """One dataset label on its way into the category system (Algorithm 1, outer loop).

    Attributes:
        name: the name as shipped (``cIndustry``); the dataset label keeps it.
        matched: the name without its ordinal prefix (``Industry``), the one matched.
        label_id: its graph id, ``<dataset>/<name>``.
        parent_id: graph id of its parent in the dataset's tree, if it has one.
        aug: its OSM-augmented text (section 3.3.1).
        vector: its text vector, shape ``(d,)``, unit norm.
    """

    name: str
    matched: str
    label_id: str
    parent_id: str | None
    aug: AugmentedLabel
    vector: np.ndarray


@dataclass
class _TreeMerge:
    """One dataset's tree while it is merged.

    Attributes:
        dataset: dataset key.
        kind: the kind of every label of the tree.
        semantics: similarity machinery and settings.
        overrides: human pins, forbids and placements.
        grown: unified labels this tree has grown so far; the tree's own classes are
            distinct by definition, so its labels never map to them (labels it grew in an
            earlier merge, which other datasets may since have joined, stay candidates).
    """

    dataset: str
    kind: str
    semantics: LabelSemantics
    overrides: Overrides
    grown: set[str] = field(default_factory=set)

    @property
    def settings(self) -> MergeSettings:
        """The merge settings (thresholds, weights, ``k``)."""
        return self.semantics.settings

    def forbidden(self, label: LabelToMerge, target: str) -> bool:
        """Whether the override file forbids ``label`` to map to (or be similar to) ``target``."""
        return self.overrides.forbidden(self.dataset, label.name, target)


_Ranked = list[tuple[str, Score]]
"""Candidates ``(unified label, score)``, best combined score first."""


def _labels_to_merge(
    dataset: str,
    nodes: list[tuple[str, str | None]],
    semantics: LabelSemantics,
    aliases: dict[str, str],
) -> list[LabelToMerge]:
    """The tree's labels, parents first, with matched names, augmented texts and vectors."""
    ordered = _parents_first(nodes)
    matched = strip_ordinals([name for name, _ in ordered])
    augmented = [semantics.augment(matched[name], aliases.get(name)) for name, _ in ordered]
    vectors = semantics.vectors(augmented)
    return [
        LabelToMerge(
            name=name,
            matched=matched[name],
            label_id=f"{dataset}/{name}",
            parent_id=None if parent is None else f"{dataset}/{parent}",
            aug=aug,
            vector=vector,
        )
        for (name, parent), aug, vector in zip(ordered, augmented, vectors, strict=True)
    ]


def _add_dataset_label(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge) -> None:
    """Step 1: ``label`` as a ``dataset`` node, ``IS_A`` its parent in the dataset's tree."""
    graph.add_label(
        label.label_id,
        label.name,
        "dataset",
        dataset=tree.dataset,
        **node_attrs(label.aug, label.vector),
        kind=tree.kind,
    )
    if label.parent_id is not None:
        pv = np.asarray(graph.embedding(label.parent_id), dtype=np.float32)
        score = tree.semantics.combine(
            float(label.vector @ pv), label.aug.tag_match, tag_match(graph, label.parent_id)
        )
        graph.add_edge(label.label_id, label.parent_id, IS_A, score=max(score.combined, 1e-3))


def _map_one(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge) -> MappingRow:
    """``MAPS_TO`` for one dataset label (Algorithm 1, ``get_similar_label``), in three steps.

    1. rank candidates (:func:`_rank_candidates`; steps 2-3 of the module docstring);
    2. apply overrides and thresholds (steps 4-5): forbidden candidates and those of another kind
       cannot be mapped to (:func:`_mappable`); ``SIMILAR`` edges to the rest that score at
       least ``similar_threshold``; the target is the ``pin`` of the override file, else
       the best candidate scoring at least ``map_threshold``, else the unified label of
       the same canonical name (:func:`_pinned`, :func:`_best_scored`, :func:`_namesake`);
    3. with no target, place a new unified label (:func:`_place_new_label`).

    Scores decide only between labels of the same kind: a land-cover label (``trees``)
    never maps to a scene label (``forest``) however similar the words, and is linked to
    it by ``RELATED`` instead. A label that would grow joins an existing unified label of
    the same canonical name, of either kind (BigEarthNet's ``Pastures`` joins the
    ``pasture`` EuroSAT's ``Pasture`` grew).
    """
    candidates = _rank_candidates(graph, tree, label)
    scored = _mappable(graph, tree, label, candidates)
    _add_similar_edges(graph, tree, label, scored)
    target = (
        _pinned(graph, tree, label)
        or _best_scored(tree, label, scored)
        or _namesake(graph, tree, label)
    )
    if target is None:
        return _place_new_label(graph, tree, label, candidates)
    unified, score, why = target
    return _maps_to(graph, label.label_id, unified, score, why, False)


def _rank_candidates(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge) -> _Ranked:
    """Steps 2-3: the ``k`` unified labels nearest by text cosine, scored, best first.

    The score is ``a * text + b * struct`` (section 3.3.1, :meth:`LabelSemantics.combine`).
    Labels this tree grew are left out; every kind and forbidden labels stay in (they
    may still be a grown label's parent or ``RELATED``).
    """
    unified = [u for u in graph.labels(UNIFIED_ORIGINS) if u not in tree.grown]
    matrix = np.asarray([graph.embedding(u) for u in unified], dtype=np.float32)
    text = matrix @ label.vector
    order = np.argsort(-text)[: tree.settings.k]
    ranked = [
        (
            unified[int(i)],
            tree.semantics.combine(
                float(text[i]), label.aug.tag_match, tag_match(graph, unified[int(i)])
            ),
        )
        for i in order
    ]
    return sorted(ranked, key=lambda pair: -pair[1].combined)


def _mappable(
    graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge, candidates: _Ranked
) -> _Ranked:
    """Candidates ``label`` may map to: not forbidden (step 5), of the tree's kind."""
    return [
        (t, s)
        for t, s in candidates
        if not tree.forbidden(label, t) and graph.kind_of(t) == tree.kind
    ]


def _add_similar_edges(
    graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge, scored: _Ranked
) -> None:
    """Step 4: ``SIMILAR {score, text_sim, struct_sim}`` to candidates at ``similar_threshold``."""
    for target, score in scored:
        if score.combined >= tree.settings.similar_threshold:
            graph.add_edge(
                label.label_id,
                target,
                SIMILAR,
                score=score.combined,
                text_sim=score.text,
                struct_sim=score.struct,
            )


_Target = tuple[str, Score, str]
"""A mapping decision: ``(unified label, score, why)``."""


def _pinned(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge) -> _Target | None:
    """Step 5: the override file's ``pin``, which wins over every score.

    Raises:
        LabelGraphError: the pin names no unified label.
    """
    pinned = tree.overrides.pinned(tree.dataset, label.name)
    if pinned is None:
        return None
    if not graph.is_unified(pinned):
        raise LabelGraphError(
            f"label override pins {label.label_id} to {pinned!r}, which is not a unified label"
        )
    return pinned, _score_to(graph, tree, label, pinned), "pinned by the label override file"


def _best_scored(tree: _TreeMerge, label: LabelToMerge, scored: _Ranked) -> _Target | None:
    """Step 4: the best mappable candidate, when it scores at least ``map_threshold``."""
    if not scored or scored[0][1].combined < tree.settings.map_threshold:
        return None
    target, score = scored[0]
    return target, score, _why(score, label.aug, tree.settings)


def _namesake(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge) -> _Target | None:
    """Step 4: the unified label named like ``label`` (canonical name), of either kind.

    Not one this tree grew, nor one the override file forbids.
    """
    namesake = canonical_name(label.matched, tree.semantics.vocabulary)
    if not graph.is_unified(namesake) or namesake in tree.grown or tree.forbidden(label, namesake):
        return None
    score = _score_to(graph, tree, label, namesake)
    reason = _why(score, label.aug, tree.settings)
    return namesake, score, f"joins existing unified label {namesake!r} by name ({reason})"


def _score_to(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge, target: str) -> Score:
    """Score of ``label`` against one unified label outside the ranked candidates."""
    return tree.semantics.combine(
        float(np.asarray(graph.embedding(target)) @ label.vector),
        label.aug.tag_match,
        tag_match(graph, target),
    )


def _maps_to(
    graph: LabelGraph, label_id: str, target: str, score: Score, why: str, new: bool
) -> MappingRow:
    """The ``MAPS_TO {score, text_sim, struct_sim, why}`` edge and its mapping row."""
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
    """The "why" column of a mapping decided by score: the weighted terms, or text only."""
    if score.struct is None:
        reason = "no OSM match" if not aug.osm_tags else "target has no OSM match"
        return f"text {score.text:.2f} ({reason}, text only)"
    return (
        f"{settings.text_weight:.2f}*text {score.text:.2f} + {settings.struct_weight:.2f}*struct "
        f"{score.struct:.2f} via {', '.join(aug.osm_tags[:2])}"
    )


def _place_new_label(
    graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge, candidates: _Ranked
) -> MappingRow:
    """Step 4, no target: a new unified label for ``label`` (the category system grows).

    Its parent (``IS_A``): the override file's ``place``, else the parent
    :func:`_home` finds. Candidates of the other kind scoring at least
    ``similar_threshold`` get ``RELATED {score, evidence: "label_similarity"}`` (UC Merced
    multi-label ``trees`` - ``forest``); step 6 adds the OSM co-citation ``RELATED``
    edges (:func:`relate_unified`).

    Raises:
        LabelGraphError: the ``place`` override names no unified label.
    """
    settings = tree.settings
    placed = tree.overrides.placed_under(tree.dataset, label.name)
    if placed is not None and not graph.is_unified(placed):
        raise LabelGraphError(
            f"label override places {label.label_id} under {placed!r}, "
            "which is not a unified label"
        )
    unified_id = _add_unified_label(graph, tree, label)
    home = placed if placed is not None else _home(graph, tree, label, candidates)
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
            graph.kind_of(target) != tree.kind
            and score.combined >= settings.similar_threshold
            and not tree.forbidden(label, target)
        ):
            graph.add_edge(
                unified_id,
                target,
                RELATED,
                score=round(score.combined, 6),
                evidence="label_similarity",
            )
    relate_unified(graph, unified_id, tree.semantics, graph.labels(UNIFIED_ORIGINS))
    scored = _mappable(graph, tree, label, candidates)
    best = (
        f"best candidate {scored[0][0]!r} scored {scored[0][1].combined:.2f}"
        if scored
        else "no candidate"
    )
    where = f", placed under {home!r}" if home else ", no parent found"
    if placed is not None:
        where += " by the label override file"
    why = f"new unified label: {best} < map threshold {settings.map_threshold:.2f}{where}"
    return _maps_to(graph, label.label_id, unified_id, Score(1.0, None, 1.0), why, True)


def _add_unified_label(graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge) -> str:
    """A ``unified`` node for ``label``: its canonical name, ``_2``, ``_3``... when taken."""
    base_id = canonical_name(label.matched, tree.semantics.vocabulary)
    unified_id, suffix = base_id, 2
    while unified_id in graph:
        unified_id = f"{base_id}_{suffix}"
        suffix += 1
    graph.add_label(
        unified_id,
        unified_id,
        "unified",
        dataset=tree.dataset,
        **node_attrs(label.aug, label.vector),
        kind=tree.kind,
    )
    tree.grown.add(unified_id)
    return unified_id


def _home(
    graph: LabelGraph, tree: _TreeMerge, label: LabelToMerge, candidates: _Ranked
) -> str | None:
    """Parent of a grown label: the unified label of its dataset parent, else a broader one.

    Broader in the SKOS sense: a candidate sharing an OSM tag with ``label`` and without
    a qualifier while ``label`` has one (``sparse residential`` under
    ``residential_land``); else the best candidate with children scoring at least
    ``similar_threshold``. Candidates of another kind are never parents; forbidden ones
    may be (a forbidden synonym can still be the right parent: medium residential IS_A
    residential).
    """
    if label.parent_id is not None:
        home = graph.mapped_to(label.parent_id)
        if home is not None:
            return home
    own_kind = [(t, s) for t, s in candidates if graph.kind_of(t) == tree.kind]
    if label.aug.osm_qualifier:
        uris = set(label.aug.osm_uris)
        for target, _ in own_kind:
            match = tag_match(graph, target)
            if uris & set(match.uris) and not match.qualifier:
                return target
    inner = [
        t
        for t, s in own_kind
        if graph.children(t) and s.combined >= tree.settings.similar_threshold
    ]
    return inner[0] if inner else None


def _remove_dataset(graph: LabelGraph, dataset: str) -> None:
    own = graph.labels("dataset", dataset=dataset)
    grown = [
        n
        for n in graph.labels("unified")
        if graph.dataset_of(n) == dataset
        and all(graph.dataset_of(u) == dataset for u in graph.mapped_from(n))
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
        new = graph.origin(edge.target) == "unified" and graph.dataset_of(edge.target) == dataset
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
