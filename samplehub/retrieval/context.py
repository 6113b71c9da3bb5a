"""Everything a query reads, loaded once per repository state and shared by queries.

A :class:`QueryContext` holds the samples snapshot, the label graph with its Eq. 1
weights, the IVF-PQ index of the current feature model version, that version's label
prototypes, and the maps between catalog rows and index positions. :func:`open_context`
keeps one context per SampleHub home and rebuilds it when a Delta table, the label graph,
the index files or the MLflow store changed (a ``stat`` per query on local storage, a
Delta version read on object storage), so a long-running server sees new data without
paying the load on every query.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from samplehub.errors import IndexNotTrainedError
from samplehub.index.ivfpq import IvfpqIndex
from samplehub.labels.association import AssociationWeights, associated_labels
from samplehub.labels.graph import LabelGraph
from samplehub.repository import Repository
from samplehub.retrieval.expansion import (
    ExactGroup,
    LabelMatch,
    PrototypeTarget,
    exact_groups,
    prototype_targets,
)
from samplehub.retrieval.planner import AllowedPositions, IndexedVectors
from samplehub.retrieval.snapshot import COLUMNS, SampleSnapshot

if TYPE_CHECKING:
    from samplehub.retrieval.prototypes import LabelPrototypes

log = logging.getLogger(__name__)

MAX_CACHED_LABELS = 256
"""Query labels whose exact matches, targets and unfiltered allowed-position set (ntotal / 8
bytes) a context keeps."""
T = TypeVar("T")

Prototypes = dict[str, tuple[np.ndarray, np.ndarray]]
"""label key -> (prototype ids (P,) int64, prototype vectors (P, d) float32); keys as in
:mod:`samplehub.retrieval.prototypes` (a unified label's id, ``<dataset>/<name>``)."""


@dataclass
class QueryContext:
    """The read-only state of one repository version, shared by concurrent queries.

    Attributes:
        snapshot: the samples.
        graph: the label graph.
        weights: Eq. 1 parameters.
        vectors: the IVF-PQ index, or None before one was built.
        prototypes: label prototypes of the index's model version.
        model_version: the feature model version of ``vectors`` and ``prototypes``.
        row_position: (n,) index position of each catalog row, -1 where not indexed.
        position_row: (ntotal,) catalog row of each index position, -1 where the sample
            left the catalog.
        extras: search structures loaded on first use for this snapshot (the Hamming index
            of :mod:`samplehub.retrieval.hashed`).
    """

    snapshot: SampleSnapshot
    graph: LabelGraph
    weights: AssociationWeights
    vectors: IndexedVectors | None
    prototypes: Prototypes
    model_version: str | None = None
    row_position: np.ndarray = field(init=False)
    position_row: np.ndarray = field(init=False)
    extras: dict[str, object] = field(init=False, default_factory=dict)
    _allowed: dict[Hashable, AllowedPositions] = field(init=False, default_factory=dict)
    _exact: dict[Hashable, tuple[list[ExactGroup], np.ndarray]] = field(
        init=False, default_factory=dict
    )
    _targets: dict[Hashable, list[PrototypeTarget]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        n = len(self.snapshot)
        self.row_position = np.full(n, -1, dtype=np.int64)
        if self.vectors is None:
            self.position_row = np.zeros(0, dtype=np.int64)
            return
        ids = self.vectors.ids
        self.position_row = np.full(len(ids), -1, dtype=np.int64)
        order = np.argsort(ids)
        slot = np.clip(np.searchsorted(ids, self.snapshot.sample_id, sorter=order), 0, len(ids) - 1)
        found = ids[order[slot]] == self.snapshot.sample_id if len(ids) else np.zeros(n, bool)
        self.row_position[found] = order[slot[found]]
        self.position_row[self.row_position[found]] = np.flatnonzero(found)

    def allowed_positions(
        self, rows: np.ndarray | None, excluded: np.ndarray, key: Hashable | None = None
    ) -> AllowedPositions:
        """Index positions a search may return: catalogued, in ``rows``, not ``excluded``.

        Works in position space, without materialising position lists; an unfiltered
        query's set depends only on its exact matches, which are fixed for this snapshot,
        so with ``key`` (the query label) it is built once and reused.

        Args:
            rows: (n,) bool mask of catalog rows that passed the filter; None for all.
            excluded: catalog row numbers to leave out (the exact matches).
            key: memoise the result under this key, the query's :class:`LabelMatch` as for
                :meth:`exact_matches` (only when ``rows`` is None).

        Returns:
            The packed positions and their count.
        """
        if rows is None and key is not None:
            return self._memoised(
                self._allowed, key, lambda: self.allowed_positions(None, excluded)
            )
        catalogued = self.position_row >= 0
        allowed = catalogued if rows is None else rows[np.maximum(self.position_row, 0)]
        allowed &= catalogued
        positions = self.row_position[excluded]
        allowed[positions[positions >= 0]] = False
        return AllowedPositions.of(allowed)

    def exact_matches(self, match: LabelMatch) -> tuple[list[ExactGroup], np.ndarray]:
        """Step 2's exact matches of ``match`` over the whole snapshot, memoised.

        They are fixed for this snapshot; a query filters them with its own mask. Building
        them touches every matching row (a tenth of a million-sample repository for a
        common label), which a repeated query label then does not pay again.

        Returns:
            :func:`~samplehub.retrieval.expansion.exact_groups` and all their rows, plus
            the other copies of their images (step 3 leaves them all out).
        """

        def build() -> tuple[list[ExactGroup], np.ndarray]:
            groups = exact_groups(self.graph, match, self.snapshot)
            rows = np.concatenate([g.rows for g in groups]) if groups else np.zeros(0, np.int64)
            return groups, self.snapshot.with_copies(rows)

        return self._memoised(self._exact, match, build)

    def prototype_targets(self, match: LabelMatch, max_distance: float) -> list[PrototypeTarget]:
        """Step 3's targets: labels associated with ``match`` by Eq. 1, memoised.

        :func:`~samplehub.retrieval.expansion.prototype_targets` of
        :func:`~samplehub.labels.association.associated_labels` within ``max_distance``.
        """
        return self._memoised(
            self._targets,
            (match, float(max_distance)),
            lambda: prototype_targets(
                self.graph,
                match,
                associated_labels(self.graph, match.unified, max_distance, self.weights),
            ),
        )

    def _memoised(self, cache: dict[Hashable, T], key: Hashable, build: Callable[[], T]) -> T:
        """``cache[key]``, built on first use; at most ``MAX_CACHED_LABELS`` entries."""
        with self._lock:
            if key in cache:
                return cache[key]
        value = build()  # outside the lock: concurrent queries of other labels go on
        with self._lock:
            if len(cache) >= MAX_CACHED_LABELS:
                cache.pop(next(iter(cache)))
            cache[key] = value
        return value


def prototype_arrays(stored: dict[str, LabelPrototypes]) -> Prototypes:
    """``load_prototypes`` output as (prototype ids, vectors) per label."""
    return {
        label: (np.arange(len(p.vectors), dtype=np.int64), np.ascontiguousarray(p.vectors))
        for label, p in stored.items()
    }


def load_context(repo: Repository) -> QueryContext:
    """Read the samples, the label graph, the index and the prototypes of ``repo``.

    A repository without an index (features not computed yet) still answers exact
    matches; step 3 then reports that it was skipped.

    Raises:
        LabelGraphError: no label graph was built yet.
    """
    from samplehub.index.lifecycle import load_ivfpq_index
    from samplehub.labels.settings import graph_settings_from_config
    from samplehub.labels.workflow import open_store
    from samplehub.models import model_version as current_model_version
    from samplehub.retrieval.prototypes import load_prototypes

    settings = graph_settings_from_config(repo.config)
    graph = open_store(settings, repo.config.home_path).load()
    snapshot = SampleSnapshot.from_table(repo.catalog.read("samples", columns=list(COLUMNS)))
    version = current_model_version(repo.config)
    index: IvfpqIndex | None
    try:
        index = load_ivfpq_index(repo, version)
    except IndexNotTrainedError as exc:
        log.warning("query without visual matching: %s", exc)
        index = None
    return QueryContext(
        snapshot=snapshot,
        graph=graph,
        weights=settings.association,
        vectors=IndexedVectors.of(index) if index is not None else None,
        prototypes=prototype_arrays(load_prototypes(repo.catalog, version)),
        model_version=version,
    )


_CONTEXTS: dict[str, tuple[Hashable, QueryContext]] = {}
_CONTEXTS_LOCK = threading.Lock()


def open_context(repo: Repository) -> QueryContext:
    """The cached context of ``repo``'s home, rebuilt when the repository changed."""
    key = f"{repo.config.home_path}|{repo.catalog.root}"
    stamp = repository_stamp(repo)
    with _CONTEXTS_LOCK:
        cached = _CONTEXTS.get(key)
        if cached is None or cached[0] != stamp:
            _CONTEXTS[key] = (stamp, load_context(repo))
        return _CONTEXTS[key][1]


def repository_stamp(repo: Repository) -> Hashable:
    """A value that changes whenever anything :func:`load_context` reads changes."""
    from samplehub.models import registry_stamp

    home = repo.config.home_path
    index_root = home / "index" / "ivfpq"
    index_files = sorted(index_root.glob("*/index.faiss")) if index_root.is_dir() else []
    return (
        _delta_stamp(repo, repo.catalog.uri("samples")),
        _delta_stamp(repo, repo.catalog.uri("prototypes")),
        _path_stamp(home / "label_graph" / "graph" / "_delta_log"),
        tuple((str(p), _path_stamp(p)) for p in index_files),
        registry_stamp(repo.config),
    )


def _path_stamp(path: Path) -> int | None:
    """Modification time of a local file or folder (ns), None if absent."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _delta_stamp(repo: Repository, uri: str) -> int | None:
    """The Delta log's mtime for a local table, its version for a remote one."""
    if "://" not in uri or uri.startswith("file://"):
        return _path_stamp(Path(uri.removeprefix("file://")) / "_delta_log")
    table = repo.catalog.table(uri.rsplit("/", 1)[-1])
    return None if table is None else int(table.version())
