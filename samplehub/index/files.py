"""Atomic writes of an index's files: a reader never sees a half-written index."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path


def write_files_atomically(folder: Path, writers: Mapping[str, Callable[[str], object]]) -> None:
    """Write each ``folder / name`` through a temporary file in ``folder`` and a rename.

    Args:
        folder: an existing folder.
        writers: file name -> function writing that file's content to the path it is given.
    """
    for name, write in writers.items():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, folder / name)
        finally:
            Path(tmp).unlink(missing_ok=True)
