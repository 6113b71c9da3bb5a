"""Shared by the asset tests: the two-dataset fixture repository, and reading what an
in-process Dagster run materialized."""

from pathlib import Path

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from assets.partitions import dataset_partitions
from assets.resources import SampleHubResource
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"
DATASETS = ("tree", "ben")


def ingest_fixture_datasets(resource: SampleHubResource, instance: DagsterInstance) -> None:
    """Ingest the folder-tree and BigEarthNet fixtures and register their partitions."""
    repo = resource.repository()
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    repo.ingest(SourceSpec(name="ben", uri=str(FIXTURES / "bigearthnet")))
    instance.add_dynamic_partitions(dataset_partitions.name, list(DATASETS))


def metadata(result: ExecuteInProcessResult, asset: str) -> dict[str, object]:
    """The materialization metadata of ``asset`` in a run, as plain values."""
    [event] = [
        m for m in result.get_asset_materialization_events() if m.asset_key == AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}
