"""What every ``samplehub`` command shares: ``--set``, the repository, the console, tables.

Every command reads ``conf/`` through :func:`samplehub.config.load_config`; ``--set``
(:data:`Overrides`) takes Hydra overrides (``--set executor.workers=2``,
``--set graph=neo4j``, ``--set home=DIR``) and ``SAMPLEHUB_HOME`` picks the home directory.
The repository is imported when a command runs, so listing the commands stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

if TYPE_CHECKING:
    from samplehub.repository import Repository

console = Console()

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Hydra override KEY=VALUE (repeatable), e.g. executor.workers=2 or graph=neo4j",
    ),
]


def open_repository(overrides: list[str] | None) -> Repository:
    """The repository of ``conf/`` with ``--set`` overrides."""
    from samplehub.repository import Repository

    return Repository.open(overrides or [])


def print_table(
    columns: Sequence[str | Column], rows: Iterable[Sequence[str]], title: str | None = None
) -> None:
    """Print one rich table.

    Args:
        columns: headers, or :class:`rich.table.Column` where a column needs settings.
        rows: the cells of each row, as text.
        title: shown above the table; None for none.
    """
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)
