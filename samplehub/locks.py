"""Writer locks a repository owns, so two writers of the same thing take turns.

Appends to Delta tables from different processes are safe on their own (each is one
optimistic commit, retried on conflict: :meth:`samplehub.catalog.Catalog.append`), but
some writes are read-modify-write over one dataset: an ingest reclaims store rows past the
last commit before appending, a feature run skips the samples already encoded. Two such
runs of the same dataset at once would truncate each other's rows or encode the same
samples twice, so each takes the dataset's lock for its whole run. Many small appends to
one table at once (feedback posted to every worker of ``samplehub serve``) take the
table's lock, so they commit one after the other instead of retrying against each other.
Locks are advisory ``flock`` locks on files under ``<home>/locks``; the kernel drops them
when the holder dies, so a killed run never leaves a stale lock behind. A ``flock`` is
shared by the processes of one machine only: on a home in object storage, writers on
different machines do not see each other's locks, and Delta's optimistic commits with
their retries are what keeps their appends whole there.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class WriterLocks:
    """Named exclusive locks under one folder.

    Args:
        folder: where the lock files live (created on first use).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        """The lock file of ``name`` (characters outside ``[A-Za-z0-9_.-]`` become ``_``)."""
        return self.folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock ``name``, waiting for its holder to finish."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another writer of %s to finish", name)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def dataset(self, name: str) -> AbstractContextManager[None]:
        """The lock of one dataset's catalog rows and store (ingest, ``fsck --repair``)."""
        return self.hold(f"dataset-{name}")

    def features(self, dataset: str) -> AbstractContextManager[None]:
        """The lock of one dataset's feature rows (a feature run)."""
        return self.hold(f"features-{dataset}")

    def index(self, path: Path) -> AbstractContextManager[None]:
        """The lock of the index at ``path`` (an update, ``fsck --repair``)."""
        return self.hold(f"index-{path.name}")

    def table(self, name: str) -> AbstractContextManager[None]:
        """The lock of appends to the catalog table ``name`` (feedback posts of the API)."""
        return self.hold(f"table-{name}")
