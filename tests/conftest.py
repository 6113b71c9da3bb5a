"""Fixtures shared by every test layer: a temporary SampleHub home and the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data"
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SAMPLEHUB_HOME (and DAGSTER_HOME inside it) for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("SAMPLEHUB_HOME", str(path))
    monkeypatch.setenv("DAGSTER_HOME", str(path / "dagster"))
    (path / "dagster").mkdir(parents=True)
    (path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (a fresh clone has no ../shared)")
    return SHARED_DATA
