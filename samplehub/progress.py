"""The one progress-bar helper: tqdm on a terminal, silent when disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm


@contextmanager
def progress_bar(
    desc: str, total: int | None = None, unit: str = "it", enabled: bool = True
) -> Iterator[tqdm]:
    """A tqdm bar that closes itself; ``enabled=False`` gives a no-op bar."""
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
