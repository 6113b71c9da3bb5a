"""A small bounded memo shared by concurrent queries of one repository state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_CACHED_LABELS = 256
"""Query labels whose exact matches, targets and unfiltered allowed-position sets
(ntotal / 8 bytes each) a query context keeps."""


class Memo(Generic[T]):
    """``key -> value`` built on first use, at most ``size`` entries (oldest dropped)."""

    def __init__(self, size: int = MAX_CACHED_LABELS) -> None:
        self.size = size
        self._values: dict[Hashable, T] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value of ``key``, from ``build()`` the first time.

        ``build`` runs outside the lock, so concurrent queries of other keys go on; two
        racing builds of one key both run and the later one is kept.
        """
        with self._lock:
            if key in self._values:
                return self._values[key]
        value = build()
        with self._lock:
            if len(self._values) >= self.size:
                self._values.pop(next(iter(self._values)))
            self._values[key] = value
        return value

    def keys(self) -> list[Hashable]:
        """The keys held now, oldest first (a copy)."""
        with self._lock:
            return list(self._values)
