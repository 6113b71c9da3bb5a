"""Drive the declarative automation in-process: evaluate the conditions of every asset
tick by tick against a real instance and execute each requested run at once."""

from __future__ import annotations

from collections import Counter

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    evaluate_automation_conditions,
    materialize,
)

from assets.ingest import INGEST_SELECTION
from assets.partitions import dataset_partitions
from assets.resources import SampleHubResource
from orchestration.definitions import defs

Key = tuple[str, str | None]


class AutomationLoop:
    """Evaluate the automation conditions and execute what they request, tick by tick."""

    def __init__(
        self,
        instance: DagsterInstance,
        resource: SampleHubResource,
        selection: AssetSelection | None = None,
    ) -> None:
        self.instance = instance
        self.selection = selection or AssetSelection.all()
        self.resources = {"samplehub": resource}
        self.cursor = None
        self.materialized: Counter[Key] = Counter()
        self.failed: list[Key] = []
        self.ticks: list[list[Key]] = []

    def tick(self) -> list[Key]:
        """One evaluation; returns the (asset, partition) pairs it requested, executed."""
        result = evaluate_automation_conditions(
            defs=defs, instance=self.instance, cursor=self.cursor, asset_selection=self.selection
        )
        self.cursor = result.cursor
        requested: dict[str | None, list[AssetKey]] = {}
        for key in sorted(defs.resolve_asset_graph().get_all_asset_keys(), key=str):
            if result.get_num_requested(key):
                for partition in result.get_requested_partitions(key):
                    requested.setdefault(partition, []).append(key)
        keys: list[Key] = []
        for partition, asset_keys in requested.items():
            run = materialize(
                defs.assets, selection=asset_keys, partition_key=partition, instance=self.instance,
                resources=self.resources, raise_on_error=False,
            )
            for key in asset_keys:
                pair = (key.to_user_string(), partition)
                keys.append(pair)
                if run.success:
                    self.materialized[pair] += 1
                else:
                    self.failed.append(pair)
        self.ticks.append(sorted(keys, key=str))
        return keys

    def settle(self, max_ticks: int = 8) -> None:
        """Tick until a tick requests nothing."""
        for _ in range(max_ticks):
            if not self.tick():
                return
        raise AssertionError(f"automation did not settle: {self.ticks}")


def ingest(loop: AutomationLoop, *names: str) -> None:
    """What the new-dataset sensor does: add the partitions and run ``samples``.

    The automation's first evaluation only records the state it finds (as the daemon's
    does when it starts), so a loop that never ticked ticks once first.
    """
    if loop.cursor is None:
        loop.tick()
    loop.instance.add_dynamic_partitions(dataset_partitions.name, list(names))
    for name in names:
        run = materialize(
            defs.assets, selection=INGEST_SELECTION, partition_key=name,
            instance=loop.instance, resources=loop.resources, raise_on_error=False,
        )
        pair = ("samples", name)
        if run.success:
            loop.materialized[pair] += 1
        else:
            loop.failed.append(pair)
