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

Sources: the catalog (:func:`catalog_multilabel_samples`): every image of an ingested
multi-label dataset (a multi-label manifest, BigEarthNet patches, any dataset with a
sample of two or more labels) with the labels every dataset holding that image gives it;
the same image in a scene dataset (``ucmerced`` and ``ucmerced_multilabel`` share their
2,100 images) adds its scene class, so scene classes and object labels connect. And the
UC Merced multi-label file itself (Chaudhuri et al., 2017), ``LandUse_Multilabeled.txt``
(:func:`read_ucmerced_multilabel`): one row per UC Merced image; the scene class (image
name without digits) is added as a label of ``uc_merced_21``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Protocol

from samplehub.errors import LabelGraphError, ManifestError
from samplehub.labels.graph import CO_OCCURS, LabelGraph

CATALOG_SOURCE = "catalog"
_IMAGE_COLUMNS = ("dataset", "uri", "labels", "content_hash")


class SampleTables(Protocol):
    """What :func:`catalog_multilabel_samples` needs of :class:`samplehub.catalog.Catalog`."""

    def table(self, name: str) -> Any:
        """The Delta table ``name``, or ``None`` before its first write."""


@dataclass(frozen=True)
class MultiLabelSamples:
    """Label ids per image of the catalog's multi-label datasets.

    Attributes:
        samples: one list of label ids (``<dataset>/<label>``) per image holding a sample
            of a multi-label dataset.
        land_cover: the multi-label datasets: those with a sample of two or more labels;
            their labels are land-cover labels (:data:`samplehub.labels.graph.LAND_COVER`).
    """

    samples: list[list[str]]
    land_cover: frozenset[str]

    @property
    def multi_label_images(self) -> int:
        """Images with two or more labels (the ones that give pairs)."""
        return sum(len(set(labels)) >= 2 for labels in self.samples)


def catalog_multilabel_samples(catalog: SampleTables, datasets: Iterable[str]) -> MultiLabelSamples:
    """Images of ``datasets``' multi-label samples, with every label the catalog gives them.

    An image is one ``content_hash`` (its decoded pixels), or one ``uri`` for rows without
    a hash, so copies of an image in several datasets pool their labels: UC Merced
    multi-label ``trees`` meets the scene class ``forest`` of the same picture in
    ``ucmerced``.

    Args:
        catalog: the catalog (its ``samples`` Delta table is read).
        datasets: the datasets to read (those merged into the label graph).
    """
    wanted = set(datasets)
    table = catalog.table("samples")
    if table is None or not wanted:
        return MultiLabelSamples([], frozenset())
    import pyarrow.compute as pc

    rows = table.to_pyarrow_dataset()
    columns = [c for c in _IMAGE_COLUMNS if c in rows.schema.names]
    data = rows.to_table(columns=columns, filter=pc.field("dataset").isin(sorted(wanted)))
    hashes = (
        data.column("content_hash").to_pylist()
        if "content_hash" in columns
        else [None] * data.num_rows
    )
    images: dict[str, set[str]] = {}
    land_cover: set[str] = set()
    multi_images: set[str] = set()
    for dataset, uri, labels, digest in zip(
        data.column("dataset").to_pylist(),
        data.column("uri").to_pylist(),
        data.column("labels").to_pylist(),
        hashes,
        strict=True,
    ):
        key = f"hash:{digest}" if digest else f"uri:{uri}"
        images.setdefault(key, set()).update(f"{dataset}/{label}" for label in labels or ())
        if len(set(labels or ())) >= 2:
            land_cover.add(dataset)
    for key, labels in images.items():
        if any(label.split("/", 1)[0] in land_cover for label in labels):
            multi_images.add(key)
    samples = [sorted(images[key]) for key in sorted(multi_images)]
    return MultiLabelSamples(samples, frozenset(land_cover))


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
