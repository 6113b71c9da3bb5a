"""Shared bits of the benchmark scripts: where the data is, how results are written."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED_DATA = Path(os.environ.get("SAMPLEHUB_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(*folders: str) -> Path:
    """The real data root, or exit 0 with a clear message when it is absent."""
    missing = [f for f in folders if not (SHARED_DATA / f).exists()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found under {SHARED_DATA} (set SAMPLEHUB_DATA)")
        sys.exit(0)
    return SHARED_DATA


def machine() -> dict[str, Any]:
    """Core count, CPU and 1-minute load average, recorded with every result.

    The load average says whether other work shared the cores during the measurement.
    """
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def write_json(name: str, payload: Any) -> Path:
    """Write ``bench/results/<name>`` and print where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path
