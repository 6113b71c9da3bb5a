"""The base taxonomy (Million-AID) and the class lists of known scene datasets.

Main paper, section 3.3.2: a baseline hierarchical label category system is extended by
merging the label systems of existing datasets. Our baseline is the Million-AID hierarchy
(Long et al., 2021): 8 level-1, 28 level-2 and 51 leaf classes. Million-AID repeats a
level-2 name as its only level-3 leaf (``water_area/lake/lake``); such a pair is one
concept and becomes one node, so the base graph has 8 + 28 + 37 = 73 labels, the
73 names of Million-AID's multi-label variant.

Ten leaf placements in the taxonomy file are marked ``?`` (not confirmed by a fetched
source). They are kept, and their ``IS_A`` edge and node carry ``uncertain=True`` so a
curator can see and fix them instead of trusting a guess.

Data: ``taxonomy/dataset_labels.json`` in the shared folder, each entry with its source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samplehub.errors import LabelGraphError, SourceNotFoundError

BASE_DATASET = "million_aid"


@dataclass(frozen=True)
class BaseLabel:
    """One label of the base taxonomy.

    Attributes:
        name: Million-AID name, e.g. ``"river"``.
        level: 1, 2 or 3 (a repeated level-2/level-3 name keeps level 2).
        parent: parent name, ``None`` for level 1.
        uncertain: the file marks this leaf's placement as unconfirmed.
    """

    name: str
    level: int
    parent: str | None
    uncertain: bool = False


@dataclass(frozen=True)
class DatasetLabels:
    """A dataset's class list as ``(name, parent)`` nodes plus display aliases.

    Attributes:
        dataset: key in the taxonomy file, e.g. ``"eurosat_10"``.
        nodes: ``(name, parent)`` pairs, parents first.
        aliases: extra human-readable names per label (EuroSAT's display names).
        source: where the class list was taken from.
    """

    dataset: str
    nodes: list[tuple[str, str | None]]
    aliases: dict[str, str]
    source: str


def load_taxonomy_file(path: str | Path) -> dict[str, Any]:
    """Read ``dataset_labels.json``.

    Raises:
        SourceNotFoundError: the file is missing.
        LabelGraphError: it is not JSON or has no ``million_aid`` entry.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(
            f"taxonomy file not found at {path}; set graph.taxonomy in conf/graph/*.yaml"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LabelGraphError(f"taxonomy file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or BASE_DATASET not in data:
        raise LabelGraphError(f"taxonomy file {path} has no {BASE_DATASET!r} entry")
    return data


def base_taxonomy(data: dict[str, Any]) -> list[BaseLabel]:
    """Million-AID labels, parents before children, ``?`` leaves flagged uncertain."""
    entry = data[BASE_DATASET]
    try:
        level1: list[str] = entry["level1"]
        level2: dict[str, list[str]] = entry["level2"]
        level3: dict[str, list[str]] = entry["level3"]
    except KeyError as exc:
        raise LabelGraphError(f"taxonomy entry {BASE_DATASET!r} lacks {exc.args[0]!r}") from exc
    labels = [BaseLabel(name, 1, None) for name in level1]
    for parent, children in level2.items():
        labels.extend(BaseLabel(name, 2, parent) for name in children)
    seen = {label.name for label in labels}
    for parent, children in level3.items():
        for raw in children:
            name = raw.rstrip("?")
            if name == parent:
                continue
            if name in seen:
                raise LabelGraphError(f"base taxonomy repeats label {name!r} under {parent!r}")
            seen.add(name)
            labels.append(BaseLabel(name, 3, parent, uncertain=raw.endswith("?")))
    return labels


def dataset_keys(data: dict[str, Any]) -> list[str]:
    """Keys of the datasets with a flat class list (usable by :func:`dataset_labels`)."""
    return [
        key
        for key, entry in data.items()
        if key != BASE_DATASET and isinstance(entry, dict) and _names_field(entry) is not None
    ]


def dataset_labels(data: dict[str, Any], dataset: str, shipped: bool = False) -> DatasetLabels:
    """Class list of one dataset of the taxonomy file, as ``(name, None)`` nodes.

    ``labels`` is preferred (the names the dataset documents); ``labels_folder`` is used
    when there is no ``labels`` list. ``labels_display`` become aliases of the folder
    names, in order. A ``parents`` mapping (RSI-CB128) gives the hierarchy.

    With ``shipped``, the names are the folder names as the dataset ships them
    (``labels_folder`` when the entry has one: RSSCN7's ``aGrass``, ``cIndustry``) and
    there are no aliases: what a dropped folder tells the system, and nothing more.

    Raises:
        LabelGraphError: the key is unknown or the entry has no flat class list.
    """
    entry = data.get(dataset)
    if not isinstance(entry, dict):
        known = ", ".join(dataset_keys(data))
        raise LabelGraphError(f"dataset {dataset!r} is not in the taxonomy file; known: {known}")
    field = "labels_folder" if shipped and isinstance(entry.get("labels_folder"), list) else None
    field = field or _names_field(entry)
    if field is None:
        raise LabelGraphError(f"dataset {dataset!r} has no flat 'labels' list in the taxonomy file")
    names: list[str] = list(entry[field])
    aliases: dict[str, str] = {}
    display = entry.get("labels_display")
    if (
        not shipped
        and field == "labels_folder"
        and isinstance(display, list)
        and len(display) == len(names)
    ):
        aliases = {n: d for n, d in zip(names, display, strict=True) if n != d}
    nodes: list[tuple[str, str | None]] = []
    parents = entry.get("parents")
    if isinstance(parents, dict):
        parent_of = {child: parent for parent, kids in parents.items() for child in kids}
        nodes.extend((parent, None) for parent in parents)
        nodes.extend((n, parent_of.get(n)) for n in names if n not in parents)
    else:
        nodes.extend((n, None) for n in names)
    return DatasetLabels(dataset, nodes, aliases, str(entry.get("source", "")))


def label_vocabulary(data: dict[str, Any]) -> frozenset[str]:
    """Words of label names (``dense_residential`` -> ``dense``, ``residential``).

    They segment glued names such as UC Merced's ``denseresidential``.
    """
    words: set[str] = set()
    glued: set[str] = set()
    single: dict[str, set[str]] = {}
    for key in [BASE_DATASET, *dataset_keys(data)]:
        for name in _all_names(data[key]):
            parts = re.findall(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])", name)
            if len(parts) > 1:
                words.update(w.lower() for w in parts)
                glued.add("".join(parts).lower())
            elif parts:
                single.setdefault(parts[0].lower(), set()).add(key)
    # A one-word name is a word when two datasets use it (``airplane``); a glued name
    # that only one dataset writes (``golfcourse``) is not, and neither is one that other
    # datasets write as separate words, however many datasets copy the glued spelling
    # (UC Merced's ``parkinglot`` is reused by RSI-CB, and NWPU writes ``parking_lot``).
    words.update(w for w, keys in single.items() if len(keys) >= 2 and w not in glued)
    return frozenset(w for w in words if len(w) >= 3)


def _names_field(entry: dict[str, Any]) -> str | None:
    for field in ("labels", "labels_folder"):
        if isinstance(entry.get(field), list):
            return field
    return None


def _all_names(entry: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for value in entry.values():
        if isinstance(value, list):
            names.extend(v for v in value if isinstance(v, str))
        elif isinstance(value, dict):
            for key, inner in value.items():
                names.append(key)
                if isinstance(inner, list):
                    names.extend(v for v in inner if isinstance(v, str))
    return names
