"""Dataset sources: each turns a location into sample records (main paper, section 3.2)."""

from __future__ import annotations

import os

from samplehub.errors import ConfigError
from samplehub.sources.base import Source, SourceSpec
from samplehub.sources.bigearthnet import BigEarthNetSource
from samplehub.sources.filesystem import check_root, filesystem_for
from samplehub.sources.folder_tree import FolderTreeSource
from samplehub.sources.geotiff import GeoTiffSource
from samplehub.sources.multilabel_manifest import MultilabelManifestSource
from samplehub.sources.tiles import TilesSource

SOURCE_KINDS: dict[str, type[Source]] = {
    source.kind: source
    for source in (
        MultilabelManifestSource, BigEarthNetSource, GeoTiffSource, FolderTreeSource, TilesSource
    )
}


def detect_kind(spec: SourceSpec) -> str:
    """Guess the source kind from the layout at ``spec.uri``; most specific kinds first."""
    fs = filesystem_for(spec.uri, spec.storage_options)
    root = check_root(fs, spec.uri)
    for kind in DETECTION_ORDER:
        if kind in SOURCE_KINDS and SOURCE_KINDS[kind].detect(fs, root):
            return kind
    raise ConfigError(
        f"{spec.uri}: cannot tell what kind of dataset this is; set `kind` to one of "
        f"{sorted(SOURCE_KINDS)} in the source config or pass --kind"
    )


def open_source(spec: SourceSpec, cache_dir: str | os.PathLike[str] | None = None) -> Source:
    """The :class:`Source` that reads ``spec`` (kind detected when ``spec.kind == "auto"``)."""
    kind = detect_kind(spec) if spec.kind == "auto" else spec.kind
    if kind not in SOURCE_KINDS:
        raise ConfigError(
            f"source {spec.name!r}: unknown kind {kind!r}; expected one of {sorted(SOURCE_KINDS)}"
        )
    return SOURCE_KINDS[kind](spec, cache_dir)


DETECTION_ORDER = ("multilabel_manifest", "bigearthnet", "geotiff", "folder_tree")

__all__ = ["SOURCE_KINDS", "Source", "SourceSpec", "detect_kind", "open_source"]
