"""``samplehub instance write``: the Dagster instance file of the configured ``instance``.

``dg dev`` and ``dagster dev`` read ``$DAGSTER_HOME/dagster.yaml``; this command writes it
from ``conf/instance/*.yaml`` (:mod:`samplehub.instance`), as ``make demo`` does for
``<home>/dagster``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplehub.cli.common import Overrides

instance_app = typer.Typer(
    help="The Dagster instance (dagster.yaml) of the configured instance: sqlite or postgres.",
    no_args_is_help=True,
)


@instance_app.command("write")
def write(
    dagster_home: Annotated[
        Path | None,
        typer.Option(help="folder to write dagster.yaml into (default: <home>/dagster)"),
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Write dagster.yaml for the configured instance and print how to use it."""
    from samplehub.config import load_config
    from samplehub.instance import write_instance_yaml

    config = load_config(overrides or [])
    path = write_instance_yaml(config, dagster_home)
    print(f"wrote {path} (instance={config.instance.kind})")
    print(f"use it with: export DAGSTER_HOME={path.parent}; dg dev")
