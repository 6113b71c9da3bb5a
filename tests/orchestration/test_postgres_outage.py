"""PostgreSQL, the Dagster instance's database, goes away in the middle of a run.

The scenario of ``tests/dagster_runs.py::postgres_outage``: a real run of
``ingest_dataset`` over all of UC Merced, its instance's PostgreSQL stopped as a crash
would after the run's second catalog commit. Then:

- the run fails visibly: a non-zero exit and the database error on its console, without
  the password of the instance's URL;
- the catalog holds committed batches only, no sample twice, and the repository check
  finds nothing that is not reclaimable;
- with the server back, the run is still ``STARTED`` and holds the ``samplehub_heavy``
  pool slot, which would stall every later heavy step; one evaluation of
  ``orphaned_runs_sensor`` marks it failed and frees the slot;
- a second run then completes: ``SUCCESS``, its materialization recorded, all 2,100
  images catalogued once, the repository check clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_runs import postgres_outage

pytestmark = pytest.mark.integration


def test_a_run_outlives_its_instance_database_and_the_next_one_completes(
    shared_data: Path, tmp_path: Path
) -> None:
    row = postgres_outage(shared_data / "ucmerced" / "Images", tmp_path)

    assert row["alive_at_stop"], "the run ended before its second commit"
    assert row["first_exit"] != 0 and row["first_shows_db_error"]
    assert not row["password_shown"]
    assert row["rows_after_first"] == row["distinct_after_first"] > 0
    assert all(f["reclaimable"] for f in row["findings_after_first"])
    assert row["first_status_after_restart"] == "STARTED" and row["slot_held_by_first"]
    assert row["first_status_after_sensor"] == "FAILURE", row["sensor"]
    assert row["slots_held_after_sensor"] == 0
    assert row["second_exit"] == 0, row["second_output_tail"]
    assert row["second_status"] == "SUCCESS" and "samples[ucm]" in row["second_materialized"]
    assert row["rows"] == row["distinct"] == row["files"] == 2100
    assert not row["findings"]
