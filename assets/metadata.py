"""Dagster metadata of the domain's run reports, written one way for every asset.

A run that writes the outputs of one model version (features, hash codes, an index,
prototypes) reports that version, its counts and its wall time; :func:`run_metadata` turns
them into materialization metadata and :func:`encoding_result` adds the counts and the data
version of a per-dataset encoding run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from dagster import DataVersion, MaterializeResult, MetadataValue


class EncodingRun(Protocol):
    """A per-dataset run that encodes the samples without outputs of a model version yet
    (:class:`samplehub.feature_store.FeatureReport`,
    :class:`samplehub.index.hamming.HashCodeReport`)."""

    total: int
    computed: int
    cached: int
    seconds: float


def run_metadata(
    model_key: str, model_version: str, seconds: float, path: Path | None = None, **values: Any
) -> dict[str, Any]:
    """The model version under ``model_key``, ``values`` in order, ``seconds`` (rounded to
    hundredths) and, when given, the output ``path``."""
    metadata = {model_key: model_version, **values,
                "seconds": MetadataValue.float(round(seconds, 2))}
    if path is not None:
        metadata["path"] = MetadataValue.path(str(path))
    return metadata


def encoding_result(
    model_key: str, model_version: str, report: EncodingRun, **values: Any
) -> MaterializeResult:
    """Materialization of an encoding run: its counts, ``values`` and wall time.

    Outputs are only ever added for a model version: a re-run that computes nothing (a
    backfill, a rescan without new files) keeps the data version ``<version>:<samples>``, so
    nothing downstream runs again.
    """
    return MaterializeResult(
        data_version=DataVersion(f"{model_version}:{report.total}"),
        metadata=run_metadata(
            model_key, model_version, report.seconds, samples=report.total,
            computed=report.computed, cached=report.cached, **values,
        ),
    )
