"""Published labels are a dataset the automation picks up: the new-dataset sensor requests
the watched folder ``publish_labels`` wrote, and the ingest job materializes it (0 rows
added: publishing ingested it already)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import instance_for_test
from test_definitions import materialize_partition, sense, sources  # noqa: F401 (fixture)

from samplehub.config import load_config
from samplehub.labelling.view import LabellingView, publish_labels, write_labelling_view
from samplehub.repository import Repository


def test_sensor_requests_each_published_version_once(
    sources: Path, tmp_path: Path  # noqa: F811 (the imported fixture)
) -> None:
    watched = tmp_path / "incoming"
    config = sources.parent / "config.yaml"
    config.write_text(config.read_text().replace("watch_root: null", f"watch_root: {watched}"))
    repo = Repository(load_config())
    with instance_for_test() as instance:
        assert materialize_partition(instance, "tree").success
        cursor = sense(instance).cursor
        ids = [str(i) for i in repo.catalog.sample_ids("tree")]
        chips = pd.DataFrame({"sample_id": ids, "x": np.arange(len(ids), dtype=float),
                              "y": np.zeros(len(ids))})
        empty = pd.DataFrame({"sample_id": [], "segment": [], "x": [], "y": []})
        write_labelling_view(repo.config.home_path, "tree", chips, empty, {})
        view = LabellingView.open(repo.config.home_path, "tree")
        view.apply_label("chip", "picked", chips=ids[:2])
        assert publish_labels(repo, view).dataset == "tree-labels-v1"

        found = sense(instance, cursor)
        assert [r.partition_key for r in found.run_requests] == ["tree-labels-v1"]
        run = materialize_partition(instance, "tree-labels-v1")
        assert run.success
        assert run.asset_materializations_for_node("samples")[0].metadata["added"].value == 0

        assert publish_labels(repo, view).unchanged  # same labels: no new folder to request
        assert sense(instance, found.cursor).run_requests == []
        view.apply_label("chip", "picked", chips=ids[2:3])
        assert publish_labels(repo, view).dataset == "tree-labels-v2"
        assert [r.partition_key for r in sense(instance, found.cursor).run_requests] == [
            "tree-labels-v2"]
