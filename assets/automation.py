"""Declarative automation of the asset graph (DESIGN.md section 5).

A new dataset partition flows from ``samples`` to queryable with no person involved: the
new-dataset sensor and the rescan schedule materialize ``samples[dataset]``; everything
downstream carries one of the conditions below, evaluated by the automation condition
sensor that ``Definitions`` ships switched on.

Two shapes cover the graph:

- :func:`per_dataset`, for a dataset partition (``label_tree``, ``image_features``,
  ``hash_codes``): runs once its own upstream partition has data that changed since the
  partition last ran, and never while that upstream partition is still running.
- :func:`across_datasets`, for an asset that reads every partition (``label_graph``,
  ``ivfpq_index``, ``label_prototypes``, ``hash_index``): runs once after a batch of upstream
  partitions changed, and only when none of them, nor what feeds them, is in flight or about
  to be requested. Five datasets that arrive together therefore give one label-graph
  version and one index update. A partition that failed (a dataset whose every file is
  corrupt) is merely missing: it blocks neither its siblings nor the aggregate.

Upstream changes are data-version changes, not bare materializations: ``samples`` reports
a data version that moves only when rows were added, so a rescan that finds nothing new
sets nothing downstream in motion.
"""

from __future__ import annotations

import hashlib
import json

from dagster import AssetKey, AssetSelection, AutomationCondition

AssetRefs = tuple[str, ...]


def _updated() -> AutomationCondition:
    """An upstream asset partition whose data changed (or that will run this tick).

    A change made by a run that also carried the target itself does not count: a chain
    requested on one tick runs as one run, and its upstream steps' new data versions must
    not request the downstream steps a second time on the next tick.
    """
    changed_elsewhere = (
        AutomationCondition.data_version_changed()
        & ~AutomationCondition.executed_with_root_target()
    )
    return changed_elsewhere | AutomationCondition.will_be_requested()


def _selection(names: AssetRefs) -> AssetSelection:
    return AssetSelection.assets(*(AssetKey(name) for name in names))


def per_dataset(
    optional: AssetRefs = (), need_one_of: AssetRefs = ()
) -> AutomationCondition:
    """The condition of a dataset-partitioned asset.

    Args:
        optional: upstream assets that may be missing (e.g. ``scene_model``, trained on
            demand: until it exists the features come from the ImageNet backbone); an
            update of them still re-runs every partition.
        need_one_of: upstream assets of which at least one must exist (the hash models:
            codes need a champion, from DMCH or DUWH).
    """
    deps_missing = AutomationCondition.any_deps_missing()
    if optional or need_one_of:
        deps_missing = deps_missing.ignore(_selection((*optional, *need_one_of)))
    condition = (
        (AutomationCondition.newly_missing() | AutomationCondition.any_deps_match(_updated()))
        .since_last_handled()
        & ~deps_missing
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    )
    if need_one_of:
        condition &= AutomationCondition.any_deps_match(~AutomationCondition.missing()).allow(
            _selection(need_one_of)
        )
    return condition.with_label("per_dataset")


def across_datasets() -> AutomationCondition:
    """The condition of an asset that reads every dataset partition upstream.

    Waits while any upstream partition, or anything feeding one, is queued, running or
    about to be requested, so a batch of datasets coalesces into one run.
    """
    in_flight = AutomationCondition.any_deps_match(
        AutomationCondition.in_progress()
        | AutomationCondition.will_be_requested()
        | AutomationCondition.any_deps_in_progress()
    )
    has_input = AutomationCondition.any_deps_match(~AutomationCondition.missing())
    return (
        (
            (AutomationCondition.newly_missing() & has_input)
            | AutomationCondition.any_deps_match(_updated())
        ).since_last_handled()
        & has_input
        & ~in_flight
        & ~AutomationCondition.in_progress()
    ).with_label("across_datasets")


def json_digest(value: object) -> str:
    """A short stable digest of a JSON-serialisable value, for an asset's data version."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
