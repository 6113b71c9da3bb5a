"""Uniform access to local folders and S3 buckets through fsspec.

The main paper (section 3.2) mounts remote repositories as local directories through
Alluxio with an in-memory cache. Here fsspec plays that role: ``s3://`` URIs go through
s3fs, wrapped in a read-through local file cache under the SampleHub home, so a second
pass over a bucket reads from local disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec

from samplehub.errors import OptionalDependencyError, SourceAccessError, SourceNotFoundError


def is_remote(uri: str) -> bool:
    """True for URIs with a scheme other than ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def strip_scheme(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key``; local paths are made absolute."""
    if is_remote(uri):
        return uri.split("://", 1)[1].rstrip("/")
    return str(Path(uri.removeprefix("file://")).expanduser().resolve())


def filesystem_for(
    uri: str,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem that reads ``uri``, with a local read-through cache for S3.

    Args:
        uri: a local path or ``s3://bucket/prefix``.
        storage_options: passed to s3fs (``endpoint_url``, ``key``, ``secret``, ...); when
            absent, s3fs reads the usual AWS environment variables.
        cache_dir: where remote files are cached; ``None`` disables caching.
    """
    if not is_remote(uri):
        return fsspec.filesystem("file")
    protocol = uri.split("://", 1)[0]
    if protocol == "s3":
        try:
            import s3fs  # noqa: F401
        except ImportError as exc:
            raise OptionalDependencyError("s3fs", "s3") from exc
    options = dict(storage_options or {})
    if protocol == "s3" and "endpoint_url" in options:
        options.setdefault("client_kwargs", {})["endpoint_url"] = options.pop("endpoint_url")
    remote = fsspec.filesystem(protocol, **options)
    if cache_dir is None:
        return remote
    return fsspec.filesystem("filecache", fs=remote, cache_storage=str(cache_dir), same_names=False)


def check_root(fs: fsspec.AbstractFileSystem, uri: str) -> str:
    """Return the fs path of ``uri`` after checking it exists and is readable.

    Raises:
        SourceNotFoundError: nothing at ``uri`` (a missing folder or bucket).
        SourceAccessError: the bucket refuses the credentials.
    """
    path = strip_scheme(uri)
    try:
        if fs.exists(path) or (is_remote(uri) and is_listable(fs, path)):
            return path
    except PermissionError as exc:
        raise SourceAccessError(
            f"cannot read {uri}: access denied ({exc}); check the source's "
            "storage_options key/secret or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        ) from exc
    except OSError as exc:
        raise SourceAccessError(f"cannot reach {uri}: {exc}") from exc
    where = f"bucket {path.split('/', 1)[0]!r} or prefix" if is_remote(uri) else "file or folder"
    raise SourceNotFoundError(
        f"no dataset at {uri}: the {where} does not exist; "
        "check the path, or the `uri` of the source in conf/sources/"
    )


def is_listable(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Whether ``fs`` can list ``path``.

    s3fs answers ``exists(bucket) == False`` both for a missing bucket and for refused
    credentials; listing tells them apart (``FileNotFoundError`` vs ``PermissionError``,
    which propagates).
    """
    try:
        fs.ls(path)
    except FileNotFoundError:
        return False
    return True


def relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` with POSIX separators."""
    root = root.rstrip("/")
    if path == root or path.startswith(f"{root}/"):
        return path[len(root) :].lstrip("/")
    return path


def join(root: str, *parts: str) -> str:
    """Join fs path parts with ``/`` (fsspec paths are POSIX for every protocol)."""
    return "/".join([root.rstrip("/"), *parts])
