"""Scoring label merges (main paper, section 3.3, Algorithm 1) against a synonym crosswalk.

A crosswalk is a list of groups of dataset label ids (``<dataset>/<label>``), one group
per concept. Over the labels of a split, a cross-dataset pair is a *true* synonym pair
when both labels share a group, and a *predicted* one when the merge mapped both to the
same unified label (``MAPS_TO``). Precision and recall are computed over pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import yaml

from samplehub.errors import LabelGraphError
from samplehub.labels.graph import LabelGraph


@dataclass(frozen=True)
class PairScore:
    """Precision / recall of predicted synonym pairs."""

    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 0.0 if total == 0 else 2 * self.precision * self.recall / total


def load_crosswalk(path: str | Path) -> dict[str, list[list[str]]]:
    """Read the crosswalk YAML: ``{split: [[label id, ...], ...]}``.

    Raises:
        LabelGraphError: a label appears twice or a group is not a list of strings.
    """
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    seen: set[str] = set()
    for split, groups in raw.items():
        for group in groups:
            if not isinstance(group, list) or not all(isinstance(x, str) for x in group):
                raise LabelGraphError(f"{path}: split {split!r} has a malformed group {group!r}")
            for label in group:
                if label in seen:
                    raise LabelGraphError(f"{path}: label {label!r} is in two groups")
                seen.add(label)
    return raw


def _cross_pairs(groups: list[list[str]]) -> set[frozenset[str]]:
    return {
        frozenset(pair)
        for group in groups
        for pair in combinations(group, 2)
        if pair[0].split("/", 1)[0] != pair[1].split("/", 1)[0]
    }


def score_graph(graph: LabelGraph, groups: list[list[str]]) -> PairScore:
    """Pairwise precision and recall of ``graph``'s mappings on one split.

    Raises:
        LabelGraphError: a crosswalk label is not a dataset label of the graph.
    """
    labels = [label for group in groups for label in group]
    target: dict[str, str] = {}
    for label in labels:
        if label not in graph.g:
            raise LabelGraphError(f"crosswalk label {label!r} is not in the merged graph")
        mapped = graph.mapped_to(label)
        if mapped is None:
            raise LabelGraphError(f"crosswalk label {label!r} has no MAPS_TO edge")
        target[label] = mapped
    predicted = _cross_pairs([[a, b] for a, b in combinations(labels, 2) if target[a] == target[b]])
    true = _cross_pairs(groups)
    hits = len(predicted & true)
    return PairScore(
        precision=hits / len(predicted) if predicted else 1.0,
        recall=hits / len(true) if true else 1.0,
        true_pairs=len(true),
        predicted_pairs=len(predicted),
    )
