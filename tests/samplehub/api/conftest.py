"""The small real repository the API and review-page tests serve, built once per session.

Real images (``asset_jobs.REAL_PICK``) are ingested, encoded, merged into the label graph
and indexed by the shipped jobs (``build_real_repository``), so these tests run the real
three-step query. Readers share ``real_repo``; a test that writes to the home (feedback,
builds, exports) takes ``real_copy``, its own copy, so no test depends on another's order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from asset_jobs import REAL_OVERRIDES, build_real_repository

from samplehub.config import load_config
from samplehub.repository import Repository


@pytest.fixture(scope="session")
def real_home(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The home of the small real repository, built once for the session."""
    from assets.resources import SampleHubResource

    root = tmp_path_factory.mktemp("real_api")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # the resource reads its home from the environment, only while building
        monkeypatch.setenv("SAMPLEHUB_HOME", str(root / "home"))
        build_real_repository(SampleHubResource(overrides=REAL_OVERRIDES), shared_data,
                              root / "images")
    return root / "home"


@pytest.fixture(scope="session")
def real_repo(real_home: Path) -> Repository:
    """The shared real repository, for tests that only read it."""
    return Repository(load_config([*REAL_OVERRIDES, f"home={real_home}"]))


@pytest.fixture
def real_copy(real_home: Path, home: Path) -> Repository:
    """A fresh copy of the real repository for one test that writes (``SAMPLEHUB_HOME``)."""
    shutil.rmtree(home)
    shutil.copytree(real_home, home)
    return Repository(load_config(REAL_OVERRIDES))
