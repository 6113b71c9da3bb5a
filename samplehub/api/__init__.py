"""The HTTP API and the review page (FastAPI): ``create_app(repo)``."""

from samplehub.api.app import create_app

__all__ = ["create_app"]
