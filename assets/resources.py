"""Resources: configuration plus a factory for the domain objects; no logic here."""

from __future__ import annotations

from dagster import ConfigurableResource

from samplehub.repository import Repository


class SampleHubResource(ConfigurableResource):  # type: ignore[misc]
    """The SampleHub repository of ``conf/`` with Hydra ``overrides``.

    Attributes:
        overrides: Hydra overrides such as ``["executor.workers=2"]``; ``SAMPLEHUB_HOME``
            in the environment picks the home directory.
    """

    overrides: list[str] = []  # noqa: RUF012 - a pydantic field, copied per instance

    def repository(self) -> Repository:
        """Open the repository (built at execution time, not at import)."""
        return Repository.open(list(self.overrides))
