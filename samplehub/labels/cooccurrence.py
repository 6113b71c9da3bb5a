"""Spatial adjacency as label co-occurrence (main paper, sections 3.3 and 3.4.1).

"Spatial proximity is computed by counting the co-occurrence of sample categories; if two
categories co-occur in the same image above a certain threshold, they are considered to
have a spatial adjacency relationship." Each sample contributes its set of label ids;
a pair seen together in at least ``min_count`` samples gets a ``CO_OCCURS`` edge with::

    count  = n(A and B)
    weight = n(A and B) / min(n(A), n(B))      (overlap coefficient, in (0, 1])

Eq. 1 turns ``weight`` into the distance ``beta / weight`` (``weight >= theta``). Edges are
keyed by their ``source``, so re-running a source replaces its edges and other sources
(e.g. content-similarity counts from visual retrieval) add parallel edges that the
shortest-path search reads as alternatives.

Data: UC Merced multi-label (Chaudhuri et al., 2017), ``LandUse_Multilabeled.txt``: one
row per UC Merced image; the scene class (image name without digits) is added as a label
of ``uc_merced_21`` so scene classes and object labels connect.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path

from samplehub.errors import LabelGraphError, ManifestError
from samplehub.labels.graph import CO_OCCURS, LabelGraph


def read_ucmerced_multilabel(
    path: str | Path,
    scene_dataset: str = "uc_merced_21",
    label_dataset: str = "uc_merced_multilabel_17",
) -> list[list[str]]:
    """Label ids per image of the UC Merced multi-label matrix.

    Returns:
        One list per image, e.g. ``["uc_merced_21/river", "uc_merced_multilabel_17/water",
        "uc_merced_multilabel_17/trees"]``.

    Raises:
        ManifestError: the header or a row is malformed (names the line).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("IMAGE"):
        raise ManifestError(f"{path}: first line must be the 'IMAGE\\LABEL ...' header")
    header = lines[0].split("\t")[1:]
    samples: list[list[str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header) + 1 or any(c not in ("0", "1") for c in cells[1:]):
            raise ManifestError(
                f"{path}:{number}: expected an image name and {len(header)} 0/1 flags"
            )
        scene = re.sub(r"\d+$", "", cells[0])
        labels = [
            f"{label_dataset}/{name}"
            for name, flag in zip(header, cells[1:], strict=True)
            if flag == "1"
        ]
        samples.append([f"{scene_dataset}/{scene}", *labels])
    return samples


def cooccurrence_counts(
    samples: Iterable[Iterable[str]],
) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """Joint counts of label pairs (sorted pair keys) and per-label counts."""
    pairs: Counter[tuple[str, str]] = Counter()
    singles: Counter[str] = Counter()
    for labels in samples:
        unique = sorted(set(labels))
        singles.update(unique)
        pairs.update(combinations(unique, 2))
    return pairs, singles


def add_cooccurrence(
    graph: LabelGraph, samples: Iterable[Iterable[str]], source: str, min_count: int
) -> tuple[LabelGraph, int]:
    """A copy of ``graph`` with this source's ``CO_OCCURS`` edges replaced.

    Args:
        graph: the label graph; every label id in ``samples`` must be in it.
        samples: label ids per sample.
        source: name of the evidence (``ucmerced_multilabel``), the edge key suffix.
        min_count: minimum joint count for an edge.

    Returns:
        The new graph and the number of edges added.

    Raises:
        LabelGraphError: a label id is not in the graph (merge its dataset first).
    """
    if min_count < 1:
        raise LabelGraphError(f"cooccurrence_min_count must be >= 1, got {min_count}")
    pairs, singles = cooccurrence_counts(samples)
    missing = sorted(label for label in singles if label not in graph.g)
    if missing:
        raise LabelGraphError(
            f"co-occurrence source {source!r} names labels not in the graph: {missing[:5]}; "
            "merge their datasets first"
        )
    new = graph.copy()
    key = f"{CO_OCCURS}:{source}"
    stale = [(u, v) for u, v, k in new.g.edges(keys=True) if k == key]
    for u, v in stale:
        new.g.remove_edge(u, v, key=key)
    added = 0
    for (a, b), count in sorted(pairs.items()):
        if count < min_count:
            continue
        weight = count / min(singles[a], singles[b])
        new.add_edge(
            a, b, CO_OCCURS, key=key, count=count, weight=round(weight, 6), evidence=source
        )
        added += 1
    return new, added
