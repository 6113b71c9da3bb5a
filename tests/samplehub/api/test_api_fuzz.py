"""Property-based fuzzing of the whole API from its own OpenAPI schema (Schemathesis).

The small real repository (``build_fuzz_repository`` of ``fuzz_cases.py``: real UC Merced and
EuroSAT images with their features, label graph and index from the shipped jobs, and a
labelling view of 40 EuroSAT chips) is served in process by ``create_app(repo)`` with the
real query and an API token. Every operation gets ``CASES`` generated requests, valid and
invalid, with real ids, labels, datasets, chips and constraints mixed into the valid ones
(``fuzz_cases.py``), so most requests run a route's logic rather than stopping at a 404 or a
validation 422. A request may be refused (4xx) but never break the server (5xx or an
exception), and the fuzzing must keep reaching the routes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from asset_jobs import REAL_OVERRIDES
from fuzz_cases import RealValues, Tally, build_fuzz_repository, fuzz_operation, load_schema
from fuzz_cases import operations as schema_operations

from samplehub.api import create_app
from samplehub.api.auth import AccessPolicy
from samplehub.repository import Repository

pytest.importorskip("schemathesis")
CASES = 20
"""Generated requests per operation (25 operations: about a minute on 2 cores)."""
TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Repository:
    """The fuzzed repository, built once for the module; published labels go to ``watched``."""
    from assets.resources import SampleHubResource

    root = tmp_path_factory.mktemp("fuzz_api")
    resource = SampleHubResource(overrides=[*REAL_OVERRIDES, f"home={root / 'home'}",
                                            f"watch_root={root / 'watched'}"])
    build_fuzz_repository(resource, shared_data, root / "images")
    return resource.repository()


def test_no_generated_request_breaks_the_server(repo: Repository) -> None:
    app = create_app(repo, access=AccessPolicy(TOKEN))
    operations = schema_operations(load_schema(app.openapi()))
    assert len(operations) >= 20
    values, tally = RealValues.of(repo), Tally()

    for operation in operations:
        fuzz_operation(operation, values, tally, CASES, 0, app=app,
                       headers={"Authorization": f"Bearer {TOKEN}"})

    assert not tally.broken, "\n".join(f"{b['curl']}: {b['answer']}" for b in tally.broken[:20])
    summary = tally.summary()
    assert summary["reached_handler_share"] > 0.6, summary["outcomes_by_operation"]
    # publishing needs a chip labelled earlier in the run; every other operation can succeed
    assert len(summary["operations_without_2xx"]) <= 1, summary["outcomes_by_operation"]
