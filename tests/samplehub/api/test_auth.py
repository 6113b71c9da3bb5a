"""The API token: writes need it, a server beyond loopback needs it for everything and will
not start without it; the pages, /docs and /health stay readable.

Queries and builds run on a copy of the small real repository (``conftest.py``) with the
real query functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from asset_jobs import REAL_PER_CLASS
from fastapi.testclient import TestClient

from samplehub.api import create_app
from samplehub.api.auth import AccessPolicy, is_loopback
from samplehub.errors import ConfigError
from samplehub.repository import Repository

TOKEN = "correct-horse-battery"
SPEC = {"name": "rivers", "labels": ["river"], "split": {"ratios": {"train": 1.0}, "seed": 1}}


def client(repo: Repository, policy: AccessPolicy | None) -> TestClient:
    return TestClient(create_app(repo, access=policy))


def test_the_policy_follows_the_interface() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    assert AccessPolicy.for_host("127.0.0.1", None) == AccessPolicy(None, protect_reads=False)
    assert AccessPolicy.for_host("::1", TOKEN) == AccessPolicy(TOKEN, protect_reads=False)
    assert AccessPolicy.for_host("0.0.0.0", TOKEN) == AccessPolicy(TOKEN, protect_reads=True)
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without an API token"):
        AccessPolicy.for_host("0.0.0.0", None)
    with pytest.raises(ConfigError, match="SAMPLEHUB_API_TOKEN"):
        AccessPolicy.for_host("192.168.1.5", "")


def test_with_a_token_writes_need_it_and_reads_stay_open_on_loopback(
    real_copy: Repository,
) -> None:
    api = client(real_copy, AccessPolicy(TOKEN))
    assert api.get("/feedback").status_code == 200
    read = api.post("/query", json={"labels": ["river"]})
    assert read.status_code == 200 and read.json()["exact"] == 2 * REAL_PER_CLASS, "a query reads"
    refused = api.post("/build", json=SPEC)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "API token" in refused.json()["detail"]
    wrong = api.post("/build", json=SPEC, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    built = api.post("/build", json=SPEC, headers={"Authorization": f"Bearer {TOKEN}"})
    assert built.status_code == 200
    assert built.json()["counts"]["river"]["exact"] == 2 * REAL_PER_CLASS  # EuroSAT + UC Merced
    api.cookies.set("samplehub_token", TOKEN.replace("-", "%2D"))  # as the pages encode it
    assert api.post("/build", json=SPEC).status_code == 200


def test_beyond_loopback_every_data_call_needs_the_token(small_repo: Repository) -> None:
    api = client(small_repo, AccessPolicy.for_host("0.0.0.0", TOKEN))
    for path in ("/labels", f"/samples/{1}", "/feedback"):
        assert api.get(path).status_code == 401, path
    assert api.post("/query", json={"labels": ["river"]}).status_code == 401
    for path in ("/review", "/labelling", "/static/api.js", "/openapi.json", "/docs", "/health"):
        assert api.get(path).status_code == 200, path
    schemes = api.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {"type": "http", "scheme": "bearer",
                                     "description": "the server's API token (api_token)"}
    ok = api.get("/feedback", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == []


def test_no_token_on_loopback_is_open(real_copy: Repository) -> None:
    api = client(real_copy, None)  # the configured api_token: unset
    built = api.post("/build", json=SPEC)
    assert built.status_code == 200, built.text
    assert built.json()["counts"]["river"]["exact"] == 2 * REAL_PER_CLASS


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SAMPLEHUB_API_TOKEN"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "samplehub"), "serve", "--host", "0.0.0.0",
         "--port", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())
    assert "refusing to serve on 0.0.0.0 without an API token" in said
    assert "SampleHub API on" not in said, "refused before announcing anything"
