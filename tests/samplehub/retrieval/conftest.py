"""Fixtures of the query tests: the tiny repository of ``query_fixture.py``."""

from __future__ import annotations

import pytest
from query_fixture import Fixture, build


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    """One repository per test module (building it takes a few seconds)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return build(tmp_path_factory.mktemp("query") / "home", monkeypatch)
