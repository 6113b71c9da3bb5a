"""Shared bits of the benchmark scripts: where the data is, how results are written."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from types import ModuleType
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
    """Core count, CPU, last-level cache and 1-minute load average, recorded with results.

    The load average says whether other work shared the cores during the measurement; the
    cache size says which working sets stayed in cache (the query benchmark's re-rank store).
    """
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "l3_cache_mb": _l3_cache_mb(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _l3_cache_mb() -> float | None:
    """Size of CPU 0's level-3 cache in MiB from sysfs, None where not reported."""
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
    except OSError:
        return None
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}
    return round(float(size[:-1]) * scale[size[-1]], 1) if size[-1] in scale else None


class TestHelpers(importlib.abc.MetaPathFinder):
    """Finds the top-level helper modules of ``tests/`` (``tests/<name>.py``), last of all.

    Putting ``tests/`` on ``sys.path`` instead would let ``tests/samplehub`` shadow the
    ``samplehub`` package; this finder answers only for plain top-level names that no
    other finder resolved, so helpers that import each other (``writers`` imports
    ``kills``) load the same way the tests load them.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        """The spec of ``tests/<fullname>.py``, or None."""
        file = REPO / "tests" / f"{fullname}.py"
        if path is None and "." not in fullname and file.is_file():
            return importlib.util.spec_from_file_location(fullname, file)
        return None


def load_test_helper(name: str) -> ModuleType:
    """A helper module of ``tests/`` (``tests/<name>.py``), with the helpers it imports."""
    if not any(isinstance(f, TestHelpers) for f in sys.meta_path):
        sys.meta_path.append(TestHelpers())
    return importlib.import_module(name)


def write_json(name: str, payload: Any) -> Path:
    """Write ``bench/results/<name>`` and print where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path
