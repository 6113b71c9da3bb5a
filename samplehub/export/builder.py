"""From a dataset spec to a logical dataset (main paper, section 3.4.3).

The spec's labels become one query whose per-label subqueries return exact matches and
supplementary samples (:func:`samplehub.retrieval.query.run_query`). The builder drops
samples rejected earlier for the same query, gives each sample one label (its first
exact label in spec order, else its best supplementary match), fills each label's quota
with exact samples first (in a seeded random order) and supplementary ones by score, and
assigns splits per label with the spec's ratios and seed. The result is a list of
members, not a copy of pixels: it is reviewed, then exported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from samplehub.export.feedback import rejected_ids
from samplehub.export.spec import DatasetSpec
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
    members = select_members(spec, [h for h in result.hits if h.sample_id not in rejected])
    assign_splits(members, spec)
    return LogicalDataset(
        build_id=build_id_for(spec, members),
        spec=spec,
        spec_id=spec_id,
        members=members,
        plan=dict(result.plan),
    )


def select_members(spec: DatasetSpec, hits: list[Hit]) -> list[Member]:
    """One member per sample, quotas applied; exact before supplementary in each label."""
    order = {label: i for i, label in enumerate(spec.labels)}
    by_sample: dict[int, list[Hit]] = {}
    for hit in hits:
        if hit.query_label in order and (hit.kind == "exact" or spec.include_supplementary):
            by_sample.setdefault(hit.sample_id, []).append(hit)
    per_label: dict[str, list[Member]] = {label: [] for label in spec.labels}
    for sample_hits in by_sample.values():
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


def assign_splits(members: list[Member], spec: DatasetSpec) -> None:
    """Set ``split`` per label: a seeded shuffle cut by the ratios (largest remainder)."""
    names = list(spec.split.ratios)
    ratios = np.array([spec.split.ratios[n] for n in names])
    rng = np.random.default_rng(spec.split.seed + 1)
    for label in spec.labels:
        group = sorted((m for m in members if m.label == label), key=lambda m: m.sample_id)
        exact = ratios * len(group)
        counts = np.floor(exact).astype(int)
        leftover = len(group) - counts.sum()
        counts[np.argsort(-(exact - counts), kind="stable")[:leftover]] += 1
        splits = np.repeat(np.arange(len(names)), counts)
        for member, index in zip(
            (group[i] for i in rng.permutation(len(group))), splits, strict=True
        ):
            member.split = names[index]


def build_id_for(spec: DatasetSpec, members: list[Member]) -> str:
    """Stable id of a build: the same spec and the same members give the same id."""
    digest = hashlib.sha256(spec.model_dump_json().encode())
    for m in sorted(members, key=lambda m: m.sample_id):
        digest.update(f"|{m.sample_id}:{m.label}:{m.kind}:{m.split}".encode())
    return f"{spec.name}-{digest.hexdigest()[:12]}"
