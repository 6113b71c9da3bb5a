"""From a dataset spec to a logical dataset (main paper, section 3.4.3).

The spec's labels become one query whose per-label subqueries return exact matches and
supplementary samples (:func:`samplehub.retrieval.query.run_query`). The builder drops
samples rejected earlier for the same query, gives each sample one label (its first
exact label in spec order, else its best supplementary match), fills each label's quota
with exact samples first (in a seeded random order) and supplementary ones by score, and
assigns splits with the spec's ratios and seed. The result is a list of
members, not a copy of pixels: it is reviewed, then exported.

An image that several datasets hold (one content hash, DESIGN section 5) becomes one
member, and the split never separates an image from its immediate neighbours: members
whose bbox centres share a small Hilbert cell (``split.hilbert_level``) form one group with
the copies of their images, and a whole group goes to one split
(:func:`assign_splits`), so no image or neighbour sits in both train and test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow.compute as pc

from samplehub.catalog import Catalog
from samplehub.export.feedback import rejected_ids
from samplehub.export.spec import DatasetSpec
from samplehub.hilbert import HILBERT_ORDER
from samplehub.repository import Repository
from samplehub.retrieval.types import Hit, HitKind, QueryResult, QuerySpec

QueryFunction = Callable[[Repository, QuerySpec], QueryResult]


@dataclass
class Member:
    """One sample of a logical dataset.

    Attributes:
        sample_id, dataset, relpath: which sample.
        label: the dataset label it is filed under (one of the spec's labels).
        labels: every spec label it was returned for.
        kind: ``exact`` or ``supplementary`` (for ``label``).
        score: the query's score (1.0 for exact matches by convention of the query).
        reason: why it was returned.
        path: label-graph path of a supplementary match.
        split: the split it was assigned to.
    """

    sample_id: int
    dataset: str
    relpath: str
    label: str
    labels: list[str]
    kind: HitKind
    score: float
    reason: str
    path: list[str] = field(default_factory=list)
    split: str = ""


@dataclass
class LogicalDataset:
    """A built dataset: the spec, its query id, the members and the query's plan."""

    build_id: str
    spec: DatasetSpec
    spec_id: str
    members: list[Member]
    plan: dict[str, object] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def counts(self) -> dict[str, dict[str, int]]:
        """``{label: {"exact": n, "supplementary": n, <split>: n, ...}}``."""
        out: dict[str, dict[str, int]] = {label: {} for label in self.spec.labels}
        for m in self.members:
            row = out.setdefault(m.label, {})
            for key in (m.kind, m.split):
                row[key] = row.get(key, 0) + 1
        return out


def build_dataset(
    repo: Repository, spec: DatasetSpec, query: QueryFunction | None = None
) -> LogicalDataset:
    """Run the spec's query and assemble the logical dataset.

    Args:
        repo: the repository to query.
        spec: the dataset spec.
        query: the query function; ``None`` uses :func:`samplehub.retrieval.query.run_query`.

    Returns:
        The logical dataset (not yet stored; see :mod:`samplehub.export.builds`).
    """
    if query is None:
        from samplehub.retrieval.query import run_query

        query = run_query
    result = query(repo, spec.query_spec())
    spec_id = spec.spec_id
    rejected = rejected_ids(repo.catalog, spec_id)
    hits = [h for h in result.hits if h.sample_id not in rejected]
    placement = placement_of(repo.catalog, [h.sample_id for h in hits])
    members = select_members(spec, hits, placement)
    groups = assign_splits(members, spec, placement)
    plan = dict(result.plan)
    plan["split"] = {
        "hilbert_level": spec.split.hilbert_level,
        "groups": len(groups),
        "grouped_members": sum(len(g) for g in groups if len(g) > 1),
    }
    return LogicalDataset(
        build_id=build_id_for(spec, members),
        spec=spec,
        spec_id=spec_id,
        members=members,
        plan=plan,
    )


@dataclass(frozen=True)
class Placement:
    """What ties samples to one side of a split.

    Attributes:
        image: sample id -> content hash of its decoded pixels (copies of one image share it).
        hilbert: sample id -> Hilbert key (level ``HILBERT_ORDER``) of its bbox centre, for
            georeferenced samples.
    """

    image: dict[int, str] = field(default_factory=dict)
    hilbert: dict[int, int] = field(default_factory=dict)

    def image_key(self, sample_id: int) -> str:
        """The sample's image: its content hash, or its id where the hash is unknown."""
        return self.image.get(sample_id) or f"sample:{sample_id}"


def placement_of(catalog: Catalog, ids: list[int]) -> Placement:
    """The content hash and Hilbert key of each of ``ids`` from the catalog."""
    if not ids:
        return Placement()
    rows = catalog.read(
        "samples",
        columns=["sample_id", "content_hash", "hilbert", "georeferenced"],
        filter_expression=pc.field("sample_id").isin(sorted(set(ids))),
    ).to_pylist()
    return Placement(
        image={r["sample_id"]: r["content_hash"] for r in rows if r["content_hash"]},
        hilbert={
            r["sample_id"]: r["hilbert"]
            for r in rows
            if r["georeferenced"] and r["hilbert"] is not None
        },
    )


def select_members(
    spec: DatasetSpec, hits: list[Hit], placement: Placement | None = None
) -> list[Member]:
    """One member per image, quotas applied; exact before supplementary in each label.

    Hits of copies of one image (``placement``; each sample its own image without it),
    whichever query label returned them, become one member.
    """
    placement = placement or Placement()
    order = {label: i for i, label in enumerate(spec.labels)}
    by_image: dict[str, list[Hit]] = {}
    for hit in hits:
        if hit.query_label in order and (hit.kind == "exact" or spec.include_supplementary):
            by_image.setdefault(placement.image_key(hit.sample_id), []).append(hit)
    per_label: dict[str, list[Member]] = {label: [] for label in spec.labels}
    for sample_hits in by_image.values():
        best = min(
            sample_hits,
            key=lambda h: (h.kind != "exact", order[h.query_label] if h.kind == "exact" else 0,
                           -h.score),
        )
        labels = sorted({h.query_label for h in sample_hits}, key=order.__getitem__)
        per_label[best.query_label].append(
            Member(
                sample_id=best.sample_id,
                dataset=best.dataset,
                relpath=best.relpath,
                label=best.query_label,
                labels=labels,
                kind=best.kind,
                score=float(best.score),
                reason=best.reason,
                path=list(best.path),
            )
        )
    rng = np.random.default_rng(spec.split.seed)
    chosen: list[Member] = []
    for label, members in per_label.items():
        exact = sorted((m for m in members if m.kind == "exact"), key=lambda m: m.sample_id)
        exact = [exact[i] for i in rng.permutation(len(exact))]
        supplementary = sorted(
            (m for m in members if m.kind == "supplementary"),
            key=lambda m: (-m.score, m.sample_id),
        )
        quota = spec.quota(label)
        chosen.extend((exact + supplementary)[:quota])
    return chosen


def assign_splits(
    members: list[Member], spec: DatasetSpec, placement: Placement | None = None
) -> list[list[Member]]:
    """Set ``split`` group by group, each label's split sizes following the ratios.

    Groups (:func:`split_groups`) are visited largest first, in a seeded random order
    among equal sizes; each goes whole to the split that its members' labels lack most
    (target ``ratio * label size`` minus members already there). With singleton groups
    every split of a label ends within one member of its target; a larger group is never
    cut, so it can push a split past its target by up to its size.

    Returns:
        The groups, as assigned.
    """
    names = list(spec.split.ratios)
    ratios = np.array([spec.split.ratios[n] for n in names])
    sizes = {label: sum(m.label == label for m in members) for label in spec.labels}
    lacking = {label: ratios * sizes[label] for label in spec.labels}
    groups = split_groups(members, placement or Placement(), spec.split.hilbert_level)
    rng = np.random.default_rng(spec.split.seed + 1)
    shuffled = [groups[i] for i in rng.permutation(len(groups))]
    for group in sorted(shuffled, key=len, reverse=True):
        index = int(np.argmax(sum(lacking[m.label] for m in group)))
        for member in group:
            member.split = names[index]
            lacking[member.label][index] -= 1
    return groups


def split_groups(
    members: list[Member], placement: Placement, hilbert_level: int | None
) -> list[list[Member]]:
    """Members that must share a split: copies of one image, samples of one Hilbert cell.

    Connected components (union-find) over two relations: same image (content hash) and,
    for georeferenced samples, same cell of the ``2**hilbert_level`` grid (the Hilbert key
    shifted right by ``2 * (HILBERT_ORDER - hilbert_level)``). Groups come in the order
    of their smallest sample id, members by sample id.
    """
    ordered = sorted(members, key=lambda m: m.sample_id)
    parent = list(range(len(ordered)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, object], int] = {}
    shift = None if hilbert_level is None else 2 * (HILBERT_ORDER - hilbert_level)
    for i, member in enumerate(ordered):
        keys: list[tuple[str, object]] = [("image", placement.image_key(member.sample_id))]
        key = placement.hilbert.get(member.sample_id)
        if key is not None and shift is not None:
            keys.append(("cell", key >> shift))
        for k in keys:
            parent[root(i)] = root(first.setdefault(k, i))
    groups: dict[int, list[Member]] = {}
    for i, member in enumerate(ordered):
        groups.setdefault(root(i), []).append(member)
    return list(groups.values())


def build_id_for(spec: DatasetSpec, members: list[Member]) -> str:
    """Stable id of a build: the same spec and the same members give the same id."""
    digest = hashlib.sha256(spec.model_dump_json().encode())
    for m in sorted(members, key=lambda m: m.sample_id):
        digest.update(f"|{m.sample_id}:{m.label}:{m.kind}:{m.split}".encode())
    return f"{spec.name}-{digest.hexdigest()[:12]}"
