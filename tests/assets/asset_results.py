"""Reading what an in-process Dagster run materialized, shared by the asset tests."""

from dagster import AssetKey, ExecuteInProcessResult


def metadata(result: ExecuteInProcessResult, asset: str) -> dict[str, object]:
    """The materialization metadata of ``asset`` in a run, as plain values."""
    [event] = [
        m for m in result.get_asset_materialization_events() if m.asset_key == AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}
