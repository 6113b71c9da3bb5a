"""Versioned index folders: a reader sees one complete version, never a mix of two.

An index is several files (``index.faiss`` + ``index.json``, or the Hamming index's three)
that must match. Renaming them into place one at a time lets a reader, or a crash between
two renames, pair a new ``index.faiss`` with an old ``index.json``. So each save writes a
complete new version and publishes it with one atomic step::

    <parent>/.versions/<name>/v000007/    one complete version (files fsynced)
    <parent>/<name> -> .versions/<name>/v000007    relative symlink, swapped by os.replace

A reader resolves the link once (:func:`published_folder`) and reads every file from the
folder it got. A folder written before versions existed (``<parent>/<name>/`` holding the
files) still loads as it is; the first save moves it into the store as ``v000000``.

Old versions are collected after each save: the newest ``keep`` always stay, and an older
one goes only once it has been replaced for ``grace_s`` seconds, so a reader that resolved
it just before a save still finds its files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

KEEP_VERSIONS = 3
GRACE_S = 60.0
VERSION = re.compile(r"v(\d{6,})")


def versions_folder(path: Path) -> Path:
    """``<parent>/.versions/<name>``: where the versions of ``path`` live."""
    return path.parent / ".versions" / path.name


def published_folder(path: str | Path) -> Path:
    """The folder holding the published version of ``path``, resolved once.

    Read every file of one index from the returned folder: a save that publishes a new
    version meanwhile does not change it.

    Args:
        path: the index path (a link to its current version, or a folder written before
            versions existed).

    Returns:
        The version folder; ``path`` itself for the old layout or when nothing was saved.
        Without a link (a crash while a first save moved an old folder), the newest
        complete version.
    """
    path = Path(path)
    if os.path.lexists(path):
        return path.resolve()
    versions = list_versions(versions_folder(path))
    return versions[-1] if versions else path


def list_versions(store: Path) -> list[Path]:
    """The complete versions in ``store``, oldest first."""
    if not store.is_dir():
        return []
    return sorted((p for p in store.iterdir() if VERSION.fullmatch(p.name)), key=_number)


def _number(version: Path) -> int:
    """The number of a ``vNNNNNN`` folder."""
    return int(version.name[1:])


def publish_version(
    path: Path,
    writers: Mapping[str, Callable[[str], object]],
    keep: int = KEEP_VERSIONS,
    grace_s: float = GRACE_S,
) -> Path:
    """Write a new version of ``path``'s files and publish it with one link swap.

    Args:
        path: the index path; its parent is created if missing.
        writers: file name -> function writing that file's content to the path it is given.
        keep: versions that always stay on disk (at least 1).
        grace_s: seconds an older version stays after it was replaced.

    Returns:
        The new version's folder.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the published version), got {keep}")
    store = versions_folder(path)
    store.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=store, prefix=".staging-"))
    try:
        for name, write in writers.items():
            write(str(staging / name))
            _fsync(staging / name)
        _fsync(staging)
        version = _claim(staging, store)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.utime(version)  # mtime = publication time, read by the collector
    _swap_link(path, version)
    collect_versions(path, keep, grace_s)
    return version


def collect_versions(path: Path, keep: int = KEEP_VERSIONS, grace_s: float = GRACE_S) -> None:
    """Remove versions of ``path`` older than the newest ``keep``, replaced ``grace_s`` ago.

    The published version and stagings younger than a day (a save in progress) are never
    removed.
    """
    store = versions_folder(path)
    current = published_folder(path)
    versions = list_versions(store)
    now = time.time()
    for position, old in enumerate(versions[:-keep]):
        replaced_at = _mtime(versions[position + 1])
        if old.resolve() == current or replaced_at is None or now - replaced_at < grace_s:
            continue
        shutil.rmtree(old, ignore_errors=True)
    for staging in store.glob(".staging-*"):
        started = _mtime(staging)
        if started is not None and now - started > 86_400:
            shutil.rmtree(staging, ignore_errors=True)


def drop_stagings(path: Path) -> int:
    """Remove every unpublished staging of ``path``; returns how many.

    Only for a caller that holds the index's writer lock: a staging then belongs to a save
    that died before publishing, not to one in progress.
    """
    stagings = list(versions_folder(path).glob(".staging-*"))
    for staging in stagings:
        shutil.rmtree(staging, ignore_errors=True)
    return len(stagings)


def _claim(staging: Path, store: Path) -> Path:
    """Rename ``staging`` to the next free ``vNNNNNN`` in ``store`` (safe with other writers)."""
    while True:
        versions = list_versions(store)
        version = store / f"v{_number(versions[-1]) + 1 if versions else 1:06d}"
        try:
            os.rename(staging, version)  # fails if another writer took the number
        except OSError:
            if not version.exists():
                raise
            continue
        _fsync(store)
        return version


def _swap_link(path: Path, version: Path) -> None:
    """Point ``path`` at ``version`` with one ``os.replace`` of a relative symlink."""
    link = path.parent / f".{path.name}.link-{uuid.uuid4().hex}"
    os.symlink(os.path.relpath(version, path.parent), link)
    try:
        if path.is_dir() and not path.is_symlink():
            _retire_old_layout(path)
        os.replace(link, path)
        _fsync(path.parent)
    finally:
        link.unlink(missing_ok=True)


def _retire_old_layout(path: Path) -> None:
    """Move a folder written before versions existed into the store as ``v000000``.

    Until the link replaces it a moment later, :func:`published_folder` falls back to the
    newest version, which is the one being published.
    """
    target = versions_folder(path) / "v000000"
    shutil.rmtree(target, ignore_errors=True)  # only left by a link replaced by hand
    os.rename(path, target)
    logger.info("moved the unversioned index folder %s to %s", path, target)


def _mtime(path: Path) -> float | None:
    """Modification time of ``path``, None if it vanished."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _fsync(path: Path) -> None:
    """Flush a written file or a folder's entries to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on folders
            os.fsync(fd)
    finally:
        os.close(fd)
