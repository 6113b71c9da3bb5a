"""The repository: the catalog, the image store and the sources of one configuration.

A thin façade so the CLI, the HTTP API and the Dagster resources open the same things
the same way. State that outlives one call (the label-graph store, loaded models) lives on
the repository, so it ends with it and follows its configuration, never in module globals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from samplehub.catalog import Catalog
from samplehub.config import SampleHubConfig, load_config, load_sources
from samplehub.errors import DatasetNotFoundError
from samplehub.ingest import IngestReport, ingest_dataset
from samplehub.locks import WriterLocks
from samplehub.object_storage import ObjectStorage
from samplehub.sources import Source, SourceSpec, open_source
from samplehub.sources.filesystem import is_remote
from samplehub.store import SampleStore

if TYPE_CHECKING:
    from samplehub.labels.settings import GraphSettings
    from samplehub.labels.store import LabelGraphStore
    from samplehub.retrieval.context import QueryContexts

T = TypeVar("T")


def watched_folders(config: SampleHubConfig) -> dict[str, Path]:
    """``{name: folder}`` for every visible sub-folder of ``config.watch_root``."""
    if not config.watch_root:
        return {}
    root = Path(config.watch_root).expanduser().resolve()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}


class ModelCache:
    """Models loaded once and kept for their owner (a repository).

    They are feature encoders, hash models and text embedders.

    A model is named by its kind and version (``("features", "scene_model-v3")``); the
    owner's configuration fixes everything else, so a cache never serves a model of another
    configuration. Thread-safe: a model is loaded once even when threads ask together.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], object] = {}
        self._lock = threading.RLock()

    def get(self, kind: str, version: str, load: Callable[[], T]) -> T:
        """The model ``(kind, version)``, calling ``load()`` the first time.

        An exception of ``load`` propagates and nothing is kept.
        """
        key = (kind, version)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load()
            return cast(T, self._loaded[key])

    def clear(self) -> None:
        """Forget every loaded model."""
        with self._lock:
            self._loaded.clear()


@dataclass
class Repository:
    """Everything one SampleHub home holds, opened from a configuration."""

    config: SampleHubConfig

    @classmethod
    def open(cls, overrides: list[str] | None = None) -> Repository:
        """The repository of ``conf/`` with Hydra ``overrides``."""
        return cls(load_config(overrides))

    @cached_property
    def object_storage(self) -> ObjectStorage:
        """``storage.storage_options``, to be translated for each client."""
        return ObjectStorage.parse(self.config.storage.storage_options)

    @cached_property
    def catalog(self) -> Catalog:
        """The Delta tables."""
        return Catalog(self.config.catalog_uri, self.object_storage.for_delta(),
                       self.object_storage.for_fsspec())

    @cached_property
    def store(self) -> SampleStore:
        """The Zarr stores."""
        return SampleStore(
            self.config.store_uri,
            thumb_size=self.config.storage.thumb_size,
            storage_options=self.object_storage.for_fsspec(),
        )

    @cached_property
    def models(self) -> ModelCache:
        """Models loaded for this repository.

        Feature encoders (:func:`samplehub.models.feature_model.feature_model`), hash models
        (:func:`samplehub.models.hash_model.load_hash_model`) and label text embedders.
        """
        return ModelCache()

    @cached_property
    def graph_settings(self) -> GraphSettings:
        """The label-graph settings of the configuration (``conf/graph``), paths resolved."""
        from samplehub.labels.settings import graph_settings_from_config

        return graph_settings_from_config(self.config)

    @cached_property
    def labels(self) -> LabelGraphStore:
        """The label-graph store of the configured backend (``graph.backend``)."""
        from samplehub.labels.workflow import open_store

        return open_store(self.graph_settings, self.config.home_path)

    def sources(self) -> dict[str, SourceSpec]:
        """Sources configured in ``conf/sources``, then one per sub-folder of ``watch_root``.

        A watched folder is a source like a configured one: its kind is detected from the
        layout at ingest and its options take their defaults. A source file of the same
        name wins over a folder.
        """
        specs = load_sources(self.config)
        for name, folder in watched_folders(self.config).items():
            specs.setdefault(name, SourceSpec(name=name, uri=str(folder), platform="watched"))
        return specs

    def available_sources(self) -> dict[str, SourceSpec]:
        """The sources whose data is present: remote ones, and local paths that exist."""
        return {
            name: spec
            for name, spec in self.sources().items()
            if is_remote(spec.uri) or Path(spec.uri).exists()
        }

    def source_spec(self, name: str) -> SourceSpec:
        """A configured or watched source, or the registry's record of an ad-hoc ingested one."""
        specs = self.sources()
        if name in specs:
            return specs[name]
        try:
            info = self.catalog.dataset(name)
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(
                f"no source named {name!r} in {self.config.sources_dir}, no folder {name!r} "
                f"under watch_root ({self.config.watch_root}) and no such dataset in the "
                f"catalog; add conf/sources/{name}.yaml or run `samplehub ingest PATH "
                f"--name {name}`"
            ) from exc
        return SourceSpec.from_record(info, name=name, uri=info.source_uri)

    def open_source(self, spec: SourceSpec) -> Source:
        """The source reader of ``spec`` (S3 reads cached under the home)."""
        return open_source(spec, cache_dir=self.config.cache_dir)

    @cached_property
    def locks(self) -> WriterLocks:
        """Writer locks of this home (``<home>/locks``), shared by every process using it."""
        return WriterLocks(self.config.home_path / "locks")

    def ingest(self, spec: SourceSpec, progress: bool = False) -> IngestReport:
        """Ingest one source into the catalog and the store, holding the dataset's lock."""
        source = self.open_source(spec)
        with self.locks.dataset(spec.name):
            return ingest_dataset(
                source,
                self.catalog,
                self.store,
                executor=self.config.executor,
                progress=progress,
            )

    def image(self, sample_id: int) -> tuple[dict[str, Any], np.ndarray]:
        """A sample's catalog row and its (C, H, W) pixels."""
        row = self.catalog.sample(sample_id)
        pixels = self.store.dataset(str(row["dataset"])).image(
            str(row["zarr_array"]), int(row["zarr_index"])
        )
        return row, pixels

    @cached_property
    def query_contexts(self) -> QueryContexts:
        """The query's loaded state of this repository, rebuilt when the repository changed.

        See :class:`samplehub.retrieval.context.QueryContexts`.
        """
        from samplehub.retrieval.context import QueryContexts

        return QueryContexts(self)
