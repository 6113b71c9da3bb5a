"""Property-based fuzzing of the whole API from its own OpenAPI schema (Schemathesis).

Every operation gets a bounded number of generated requests (valid and invalid bodies,
paths and queries) against the app over the small fixture repository; a request may be
refused (4xx) but never break the server (5xx or an exception).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from query_double import fake_query_by_image, fake_run_query

from samplehub.api import create_app
from samplehub.repository import Repository

schemathesis = pytest.importorskip("schemathesis")
CASES = 50
"""Generated requests per operation (about 25 operations: a minute on 2 cores)."""


def test_no_generated_request_breaks_the_server(small_repo: Repository) -> None:
    app = create_app(small_repo, fake_run_query, fake_query_by_image)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    broken: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def call(case: object) -> None:
            try:
                response = case.call()  # type: ignore[attr-defined]
                failed = response.status_code >= 500
                what = f"{response.status_code} {response.text[:160]}"
            except Exception as exc:  # an exception escaping the app is a 500 too
                failed, what = True, f"{type(exc).__name__}: {exc}"[:200]
            if failed:
                curl = case.as_curl_command()  # type: ignore[attr-defined]
                broken.append(f"{curl}: {what}")

        call()
    assert not broken, "\n".join(broken[:20])
