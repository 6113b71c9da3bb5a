"""Everything a query reads, loaded once per repository state and shared by queries.

A :class:`QueryContext` holds the samples snapshot, the label graph with its Eq. 1
weights, the vector indexes that step 3 and query-by-image search (the IVF-PQ index of the
current feature model version, and the Hamming index of the champion hash model once a
query asks for it), that version's label prototypes and what queries memoise per label.
A repository's :class:`QueryContexts` (``Repository.query_contexts``) keeps its current
context and rebuilds it when a Delta table, the label graph, the index files or the MLflow
store changed (a ``stat`` per query on local storage, a Delta version read on object
storage), so a long-running server sees new data without paying the load on every query.

By default the query that notices a change loads the new context, and every concurrent
query waits for it: a library caller or a test that writes and then queries sees its
write. A server instead reloads in the background (``QueryContexts(repo,
background=True)``): queries keep the old context while a thread loads the new one, warms
the per-label memos the old one had built, and swaps the reference, so publishing a new
index version (a new folder plus one link swap, :mod:`samplehub.index.files`) stalls no
request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from samplehub.errors import IndexNotTrainedError, UnknownLabelError
from samplehub.index.ivfpq import IvfpqIndex
from samplehub.labels.association import AssociationWeights, associated_labels
from samplehub.labels.graph import LabelGraph
from samplehub.repository import Repository
from samplehub.retrieval.expansion import (
    ExactGroup,
    LabelMatch,
    PrototypeTarget,
    exact_groups,
    match_label,
    prototype_targets,
)
from samplehub.retrieval.memo import Memo
from samplehub.retrieval.search import IvfpqSearch, VectorSearch
from samplehub.retrieval.snapshot import COLUMNS, SampleSnapshot
from samplehub.retrieval.types import IndexChoice

if TYPE_CHECKING:
    from samplehub.retrieval.hashed import HammingSearch
    from samplehub.retrieval.landcover import LandcoverTable
    from samplehub.retrieval.prototypes import LabelPrototypes

log = logging.getLogger(__name__)

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
        ivfpq: the IVF-PQ index over ``snapshot``, or None before one was built.
        prototypes: label prototypes of the index's model version.
        model_version: the feature model version of ``ivfpq`` and ``prototypes``.
        hamming: the champion's Hamming index over ``snapshot``, once
            :meth:`attach_hamming` loaded it (``index="hash"``).
        index_version: the published version folder ``ivfpq`` was read from
            (``v000007``, :mod:`samplehub.index.files`), None without an index.
    """

    snapshot: SampleSnapshot
    graph: LabelGraph
    weights: AssociationWeights
    ivfpq: IvfpqSearch | None
    prototypes: Prototypes
    model_version: str | None = None
    hamming: HammingSearch | None = None
    index_version: str | None = None
    _exact: Memo[tuple[list[ExactGroup], np.ndarray]] = field(
        init=False, default_factory=Memo, repr=False
    )
    _targets: Memo[list[PrototypeTarget]] = field(init=False, default_factory=Memo, repr=False)
    landcover: Memo[LandcoverTable] = field(
        init=False, default_factory=lambda: Memo(2), repr=False
    )  # HIR land-cover statistics by catalog row, per (ESFormer version, table version)
    _hamming_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def vector_search(self, choice: IndexChoice) -> VectorSearch | None:
        """The index that answers the query's ``index`` choice.

        ``hash``: the Hamming index; ``auto``, ``ivfpq`` and ``exact``: the IVF-PQ index
        (whose planner picks exact or IVF-PQ search).

        Returns:
            The index; None only for ``auto`` before an IVF-PQ index exists.

        Raises:
            IndexNotTrainedError: the asked-for index is not there (``hash``: not loaded
                by :meth:`load_search`).
        """
        if choice == "hash":
            if self.hamming is None:
                raise IndexNotTrainedError(
                    "index='hash' needs the Hamming index loaded into the query context; "
                    "use run_query (it loads it) or QueryContext.load_search"
                )
            return self.hamming
        if self.ivfpq is None and choice != "auto":
            raise IndexNotTrainedError(
                f"index={choice!r} was asked for, but no IVF-PQ index exists for model "
                f"version {self.model_version}; materialize the ivfpq_index asset"
            )
        return self.ivfpq

    def load_search(self, choice: IndexChoice, repo: Repository) -> VectorSearch | None:
        """:meth:`vector_search`, first loading what ``choice`` needs and is loaded on demand.

        That is the Hamming index for ``hash``.

        Raises:
            IndexNotTrainedError: as :meth:`vector_search`; for ``hash`` also no champion
                hash model or no Hamming index for it.
        """
        if choice == "hash":
            self.attach_hamming(repo)
        return self.vector_search(choice)

    def attach_hamming(self, repo: Repository) -> HammingSearch:
        """The champion's Hamming index over this snapshot, loaded once per champion and file.

        It is reloaded when either changed.

        Raises:
            IndexNotTrainedError: no champion hash model, or no Hamming index for it.
        """
        from samplehub.retrieval.hashed import HammingSearch, hamming_stamp

        model, stamp = hamming_stamp(repo)
        with self._hamming_lock:
            if self.hamming is None or self.hamming.stamp != stamp:
                self.hamming = HammingSearch.load(repo, model, self.snapshot.sample_id, stamp)
            return self.hamming

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

        return self._exact.get(match, build)

    def prototype_targets(self, match: LabelMatch, max_distance: float) -> list[PrototypeTarget]:
        """Step 3's targets: labels associated with ``match`` by Eq. 1, memoised.

        :func:`~samplehub.retrieval.expansion.prototype_targets` of
        :func:`~samplehub.labels.association.associated_labels` within ``max_distance``.
        """
        return self._targets.get(
            (match, float(max_distance)),
            lambda: prototype_targets(
                self.graph,
                match,
                associated_labels(self.graph, match.unified, max_distance, self.weights),
            ),
        )

    def warm(self, previous: QueryContext) -> int:
        """Build the per-label memos that ``previous`` had built, for this context's data.

        Each query label ``previous`` answered is resolved again in this context's label
        graph (the graph may have changed), then its exact matches, its Eq. 1 targets and
        its unfiltered allowed index positions are built here. A background reload calls
        this before the swap, so the first queries after it are not cold. Only the
        memoised inputs of a query are built, never a result.

        Returns:
            The number of query labels warmed.
        """
        labels = dict.fromkeys(k.query for k in previous._exact.keys() if isinstance(k, LabelMatch))
        distances = {
            (k[0].query, float(k[1])) for k in previous._targets.keys()
            if isinstance(k, tuple) and isinstance(k[0], LabelMatch)
        }
        warmed = 0
        for text in labels:
            try:
                match = match_label(self.graph, text)
            except UnknownLabelError:
                continue  # gone from the new graph; its next query reports that
            _, excluded = self.exact_matches(match)
            if self.ivfpq is not None:
                self.ivfpq.allowed(None, excluded, key=match)
            for query, max_distance in distances:
                if query == text:
                    self.prototype_targets(match, max_distance)
            warmed += 1
        return warmed


def prototype_arrays(stored: dict[str, LabelPrototypes]) -> Prototypes:
    """``load_prototypes`` output as (prototype ids, vectors) per label."""
    return {
        label: (np.arange(len(p.vectors), dtype=np.int64), np.ascontiguousarray(p.vectors))
        for label, p in stored.items()
    }


class RepositoryStamp(NamedTuple):
    """What :func:`repository_stamp` saw of each input of :func:`load_context`.

    Attributes:
        samples: the samples table's version.
        prototypes: the prototypes table's version.
        graph: the label graph's version.
        index_files: each IVF-PQ index file and its modification time.
        registry: the model registry's state (which model version is current).
    """

    samples: Hashable
    prototypes: Hashable
    graph: Hashable
    index_files: Hashable
    registry: Hashable

    def unchanged_since(self, other: RepositoryStamp) -> frozenset[str]:
        """The inputs whose stamp equals ``other``'s."""
        return frozenset(f for f in self._fields if getattr(self, f) == getattr(other, f))


def load_context(
    repo: Repository,
    previous: QueryContext | None = None,
    unchanged: frozenset[str] = frozenset(),
) -> QueryContext:
    """Read the samples, the label graph, the index and the prototypes of ``repo``.

    A repository without an index (features not computed yet) still answers exact
    matches; step 3 then reports that it was skipped.

    Args:
        repo: the repository.
        previous: the context of an earlier state, whose parts are reused where their
            inputs did not change since: the snapshot, the graph, the prototypes, the
            index, and the per-label memos built from the unchanged ones (a new index
            version alone costs a load of the index, not of a million-row snapshot).
        unchanged: the :class:`RepositoryStamp` fields equal between ``previous``'s
            state and now.

    Raises:
        LabelGraphError: no label graph was built yet.
    """
    from samplehub.index.files import published_folder
    from samplehub.index.lifecycle import index_path, load_ivfpq_index
    from samplehub.labels.settings import graph_settings_from_config
    from samplehub.labels.workflow import open_store
    from samplehub.models.feature_model import model_version as current_model_version
    from samplehub.retrieval.prototypes import load_prototypes

    if previous is None:
        unchanged = frozenset()
    settings = graph_settings_from_config(repo.config)
    version = current_model_version(repo.config)
    if previous is not None and previous.model_version != version:
        unchanged -= {"prototypes", "index_files"}
    if previous is not None and "graph" in unchanged:
        graph = previous.graph
    else:
        graph = open_store(settings, repo.config.home_path).load()
    if previous is not None and "samples" in unchanged:
        snapshot = previous.snapshot
    else:
        snapshot = SampleSnapshot.from_table(
            repo.catalog.read("samples", columns=list(COLUMNS)))
    if previous is not None and "prototypes" in unchanged:
        prototypes = previous.prototypes
    else:
        prototypes = prototype_arrays(load_prototypes(repo.catalog, version))
    ivfpq: IvfpqSearch | None
    if previous is not None and "index_files" in unchanged:
        folder = previous.index_version
        ivfpq = previous.ivfpq
        if ivfpq is not None and snapshot is not previous.snapshot:
            ivfpq = IvfpqSearch.of(ivfpq.index, snapshot.sample_id)  # new rows, same index
    else:
        # resolved before the load: a version published in between makes the stamp
        # differ, and the next check reloads and names it
        folder = published_folder(index_path(repo.config, version)).name
        index: IvfpqIndex | None
        try:
            index = load_ivfpq_index(repo, version, mmap=repo.config.retrieval.mmap)
        except IndexNotTrainedError as exc:
            log.warning("query without visual matching: %s", exc)
            index = None
        ivfpq = IvfpqSearch.of(index, snapshot.sample_id) if index is not None else None
    context = QueryContext(
        snapshot=snapshot,
        graph=graph,
        weights=settings.association,
        ivfpq=ivfpq,
        prototypes=prototypes,
        model_version=version,
        index_version=folder if ivfpq is not None else None,
    )
    if previous is not None and graph is previous.graph:
        context._targets = previous._targets  # Eq. 1 targets depend on the graph only
        if snapshot is previous.snapshot:
            context._exact = previous._exact  # exact matches: on the graph and the samples
    return context


class QueryContexts:
    """The current :class:`QueryContext` of one repository, revalidated per query.

    Held by the repository (``Repository.query_contexts``), so a server that keeps its
    repository keeps its context, and a test's or a reconfigured repository starts afresh.

    In background mode (a server), queries do not check the repository: a watcher thread,
    started by the first load, compares :func:`repository_stamp` every ``poll_s`` seconds
    and, on a change, loads the new context, warms it (:meth:`QueryContext.warm`) and
    swaps the reference, while queries keep getting the old one. A failed reload is logged
    and retried after ``retry_s`` (a half-written repository state fails the same way
    until its writer is done); the old context stays served.

    Args:
        repo: the repository.
        background: reload in the background (above); False reloads in the query that
            noticed the change, and concurrent queries wait for it.
        poll_s: seconds between the watcher's checks.
        retry_s: seconds before the watcher retries a failed reload.

    Attributes:
        background: as the argument; a server sets it before its first query.
        reloads: contexts swapped in by background reloads so far.
        swapped_at: when the last background reload swapped its context in (Unix time),
            None before the first.
    """

    def __init__(
        self, repo: Repository, background: bool = False, poll_s: float = 1.0,
        retry_s: float = 5.0,
    ) -> None:
        self.repo = repo
        self.background = background
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.reloads = 0
        self.swapped_at: float | None = None
        self._current: tuple[RepositoryStamp, QueryContext] | None = None
        self._lock = threading.Lock()
        self._reloading = False
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    def current(self) -> QueryContext:
        """The context of the repository as it is now.

        Synchronous mode: the cached one while its :func:`repository_stamp` is unchanged,
        else a fresh :func:`load_context`. Background mode: the one served now, loaded by
        the first call (which starts the watcher).
        """
        if self.background:
            with self._lock:
                if self._current is not None:
                    return self._current[1]
        stamp = repository_stamp(self.repo)
        with self._lock:
            if self._current is None:
                self._current = (stamp, load_context(self.repo))
            elif self._current[0] != stamp:
                old_stamp, old = self._current
                self._current = (stamp, load_context(self.repo, old,
                                                     stamp.unchanged_since(old_stamp)))
            if self.background and self._watcher is None:
                self._stop.clear()
                self._watcher = threading.Thread(
                    target=self._watch, name="samplehub-context-watcher", daemon=True
                )
                self._watcher.start()
            return self._current[1]

    def _watch(self) -> None:
        """Until :meth:`close`: reload whenever the repository stamp changed."""
        wait = self.poll_s
        while not self._stop.wait(wait):
            wait = self.poll_s
            with self._lock:
                served = self._current
            try:
                stamp = repository_stamp(self.repo)
                if served is not None and stamp != served[0]:
                    self._reload(stamp, *served)
            except Exception:
                # the old context stays served; a failed reload must not fail its queries
                log.exception("background reload of the query context failed; retry in "
                              "%.0f s", self.retry_s)
                wait = self.retry_s
            finally:
                with self._lock:
                    self._reloading = False

    def _reload(
        self, stamp: RepositoryStamp, previous_stamp: RepositoryStamp, previous: QueryContext
    ) -> None:
        """Load the context of ``stamp``, warm it from ``previous`` and swap it in.

        Parts whose inputs did not change since ``previous_stamp`` are reused.
        """
        start = time.perf_counter()
        with self._lock:
            self._reloading = True
        unchanged = stamp.unchanged_since(previous_stamp)
        context = load_context(self.repo, previous, unchanged)
        warmed = context.warm(previous)
        with self._lock:
            self._current = (stamp, context)
            self.reloads += 1
            self.swapped_at = time.time()
        log.info("query context reloaded in the background in %.1f s (%d labels warmed; "
                 "reused: %s)", time.perf_counter() - start, warmed,
                 ", ".join(sorted(unchanged)) or "nothing")

    def close(self) -> None:
        """Stop the watcher (background mode); the served context stays."""
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join()

    def served(self) -> QueryContext | None:
        """The context queries get now, without checking the repository (None before one)."""
        with self._lock:
            return None if self._current is None else self._current[1]

    @property
    def reloading(self) -> bool:
        """Whether a background reload is running."""
        with self._lock:
            return self._reloading


def open_context(repo: Repository) -> QueryContext:
    """The cached context of ``repo``, rebuilt when the repository changed."""
    return repo.query_contexts.current()


def repository_stamp(repo: Repository) -> RepositoryStamp:
    """A value that changes whenever anything :func:`load_context` reads changes."""
    from samplehub.models.feature_model import registry_stamp

    home = repo.config.home_path
    index_root = home / "index" / "ivfpq"
    index_files = sorted(index_root.glob("*/index.faiss")) if index_root.is_dir() else []
    return RepositoryStamp(
        samples=_delta_stamp(repo, repo.catalog.uri("samples")),
        prototypes=_delta_stamp(repo, repo.catalog.uri("prototypes")),
        graph=_path_stamp(home / "label_graph" / "graph" / "_delta_log"),
        index_files=tuple((str(p), _path_stamp(p)) for p in index_files),
        registry=registry_stamp(repo.config),
    )


def _path_stamp(path: Path) -> int | None:
    """Modification time of a local file or folder (ns), None if absent."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def delta_stamp(repo: Repository, uri: str) -> int | None:
    """:func:`_delta_stamp`, for tables read outside :func:`load_context` (land cover)."""
    return _delta_stamp(repo, uri)


def _delta_stamp(repo: Repository, uri: str) -> int | None:
    """The Delta log's mtime for a local table, its version for a remote one."""
    if "://" not in uri or uri.startswith("file://"):
        return _path_stamp(Path(uri.removeprefix("file://")) / "_delta_log")
    table = repo.catalog.table(uri.rsplit("/", 1)[-1])
    return None if table is None else int(table.version())
