"""Real Dagster runs in their own processes: ``dagster job execute``, the run worker's path.

Used by the orchestration tests that need a run to be a process of its own, to stop its
database under it or to start two at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def job_command(job: str, partition: str, overrides: list[str], work: Path) -> list[str]:
    """argv of ``dagster job execute`` of ``job[partition]`` with Hydra ``overrides``.

    The run config goes to a file under ``work`` (named after the job and partition).
    """
    config = {"resources": {"samplehub": {"config": {"overrides": overrides}}}}
    path = work / f"{job}-{partition}.yaml"
    path.write_text(json.dumps(config))
    dagster = Path(sys.executable).with_name("dagster")
    return [str(dagster), "job", "execute", "-m", "orchestration.definitions", "-j", job,
            "--tags", json.dumps({"dagster/partition": partition}), "-c", str(path)]
