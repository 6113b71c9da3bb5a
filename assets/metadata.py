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

from samplehub.retrieval.comparison import ComparisonUpdate


class EncodingRun(Protocol):
    """A per-dataset run that encodes the samples without outputs of a model version yet.

    :class:`samplehub.feature_store.FeatureReport` and
    :class:`samplehub.index.hamming.HashCodeReport` are such runs.
    """

    total: int
    computed: int
    cached: int
    seconds: float


def run_metadata(
    model_key: str, model_version: str, seconds: float, path: Path | None = None, **values: Any
) -> dict[str, Any]:
    """Metadata of a run that wrote one model version's outputs.

    Args:
        model_key: the key of the model version (``model_version``, or ``model`` for a
            hash model).
        model_version: the model version.
        seconds: wall time of the run, rounded to hundredths.
        path: the output folder or file; None for none.
        values: further metadata, kept in order between the version and ``seconds``.

    Returns:
        ``{model_key: model_version, **values, "seconds": ..., "path": ...}``.
    """
    metadata = {model_key: model_version, **values,
                "seconds": MetadataValue.float(round(seconds, 2))}
    if path is not None:
        metadata["path"] = MetadataValue.path(str(path))
    return metadata


def encoding_result(
    model_key: str, model_version: str, report: EncodingRun, **values: Any
) -> MaterializeResult:
    """Materialization of an encoding run: its counts, ``values`` and wall time.

    The metadata are :func:`run_metadata` with ``samples``, ``computed`` and ``cached``.
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


def comparison_metadata(update: ComparisonUpdate) -> dict[str, Any]:
    """Metadata of a Hamming-vs-IVF-PQ measurement: the index ``auto`` may use and why.

    ``index_comparison`` is ``hash wins`` or ``ivfpq wins`` (on mAP@k by label and p50
    latency, both), or why nothing was measured.
    """
    c = update.comparison
    if c is None:
        return {"index_comparison": f"skipped: {update.skipped}"}
    return {
        "index_comparison": "hash wins" if c.hash_wins else "ivfpq wins",
        f"hash_map@{c.k}": MetadataValue.float(c.hash.map_at_k),
        f"ivfpq_map@{c.k}": MetadataValue.float(c.ivfpq.map_at_k),
        "hash_p50_ms": MetadataValue.float(c.hash.p50_ms),
        "ivfpq_p50_ms": MetadataValue.float(c.ivfpq.p50_ms),
        "comparison_probe": c.probe,
        "comparison_path": MetadataValue.path(str(update.path)),
    }
