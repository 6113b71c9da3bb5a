"""The Dagster instance file (``dagster.yaml``) of the configured ``instance`` group.

DESIGN.md section 3, "orchestration state": the embedded default keeps Dagster's runs,
event logs and schedules in SQLite under ``DAGSTER_HOME``; ``instance=postgres`` keeps
them in PostgreSQL (``dagster-postgres``, ``pip install 'samplehub[postgres]'``). The choice
is a config group, so this module turns it into the ``dagster.yaml`` that ``make demo``,
``dg dev`` and ``dagster dev`` read from ``DAGSTER_HOME``:

* settings every instance shares (telemetry, run queue, ...) come from
  ``infra/dagster.yaml``;
* ``storage`` is absent for ``sqlite`` (Dagster's SQLite default under ``DAGSTER_HOME``)
  and ``{"postgres": {"postgres_url": instance.postgres_url}}`` for ``postgres``.

``make demo`` writes it to ``<home>/dagster``; ``samplehub instance write`` does the same
for a ``DAGSTER_HOME`` of one's choice.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from samplehub.config import SampleHubConfig
from samplehub.errors import ConfigError, OptionalDependencyError, without_credentials

INFRA_INSTANCE = Path(__file__).resolve().parents[1] / "infra" / "dagster.yaml"
INSTANCE_KINDS = ("sqlite", "postgres")
HEADER = (
    "# Written by samplehub (samplehub.instance) for instance={kind}; it is rewritten from the\n"
    "# config, so change conf/instance/*.yaml or infra/dagster.yaml instead of this file.\n"
)


def dagster_home(config: SampleHubConfig) -> Path:
    """The ``DAGSTER_HOME`` that ``make demo`` uses: ``<home>/dagster``."""
    return config.home_path / "dagster"


def instance_settings(config: SampleHubConfig) -> dict[str, Any]:
    """The content of ``dagster.yaml`` for ``config.instance``.

    Raises:
        ConfigError: an unknown ``instance.kind``, or ``postgres`` without a
            ``postgresql://`` ``instance.postgres_url``.
        OptionalDependencyError: ``postgres`` without ``dagster-postgres`` installed.
    """
    kind, url = config.instance.kind, config.instance.postgres_url
    if kind not in INSTANCE_KINDS:
        raise ConfigError(f"instance.kind={kind!r}: choose one of {', '.join(INSTANCE_KINDS)}")
    base = OmegaConf.load(INFRA_INSTANCE) if INFRA_INSTANCE.is_file() else None
    settings = cast(dict[str, Any], OmegaConf.to_container(base) if base else {})
    settings.pop("storage", None)
    if kind == "sqlite":
        return settings
    if not url or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"instance.postgres_url={without_credentials(url or '')!r}: instance=postgres "
            "needs a URL "
            "postgresql://USER:PASSWORD@HOST:PORT/DB (or set DAGSTER_POSTGRES_URL)"
        )
    if importlib.util.find_spec("dagster_postgres") is None:
        raise OptionalDependencyError("dagster-postgres", "postgres")
    return {**settings, "storage": {"postgres": {"postgres_url": url}}}


def write_instance_yaml(
    config: SampleHubConfig, directory: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``dagster.yaml`` for ``config.instance`` into ``directory`` and return its path.

    ``directory`` defaults to :func:`dagster_home`. The file is only rewritten when its
    content changes. A PostgreSQL URL may hold a password, so that file is readable by its
    owner only.

    Raises:
        ConfigError: see :func:`instance_settings`.
        OptionalDependencyError: see :func:`instance_settings`.
    """
    folder = Path(directory) if directory is not None else dagster_home(config)
    settings = instance_settings(config)
    text = HEADER.format(kind=config.instance.kind) + OmegaConf.to_yaml(OmegaConf.create(settings))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dagster.yaml"
    if path.is_file() and path.read_text() == text:
        return path
    partial = folder / ".dagster.yaml.partial"
    partial.write_text(text)
    if "storage" in settings:
        partial.chmod(0o600)
    partial.replace(path)
    return path
