"""Fixtures of the builder and API tests: a small ingested repository.

The query test double is in ``query_double.py`` (``fake_run_query``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from samplehub.config import load_config
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def ingested_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the folder tree, BigEarthNet and multi-label fixtures ingested once."""
    home = tmp_path_factory.mktemp("ingested") / "home"
    repo = Repository(load_config([f"home={home}", "executor.workers=2"]))
    repo.ingest(SourceSpec(name="tree", uri=str(FIXTURES / "folder_tree")))
    repo.ingest(SourceSpec(name="ben", uri=str(FIXTURES / "bigearthnet")))
    repo.ingest(
        SourceSpec(
            name="ml",
            uri=str(FIXTURES / "multilabel_manifest"),
            options={"images": str(FIXTURES / "multilabel_manifest" / "images")},
        )
    )
    return home


@pytest.fixture
def small_repo(ingested_home: Path, home: Path) -> Repository:
    """A fresh copy of the ingested home (``SAMPLEHUB_HOME`` points at it)."""
    shutil.rmtree(home)
    shutil.copytree(ingested_home, home)
    return Repository(load_config())


@pytest.fixture(scope="session")
def labelling_home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty real EuroSAT chips ingested and their labelling view written, once
    (``labelling_fixture.py``); tests copy it with ``labelled_home``."""
    from labelling_fixture import ingest_chips

    return ingest_chips(shared_data, tmp_path_factory.mktemp("labelling"))
