"""Uniform access to local folders and S3 buckets through fsspec.

The main paper (section 3.2) mounts remote repositories as local directories through
Alluxio with an in-memory cache. Here fsspec plays that role: ``s3://`` URIs go through
s3fs, and :class:`ReadThroughCache` keeps a local copy of every object read under the
SampleHub home, so a second pass over a bucket reads from local disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
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
    uri: str, storage_options: Mapping[str, Any] | None = None
) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem that reads ``uri`` (local, or s3fs for ``s3://``).

    Args:
        uri: a local path or ``s3://bucket/prefix``.
        storage_options: passed to s3fs (``endpoint_url``, ``key``, ``secret``, ...); when
            absent, s3fs reads the usual AWS environment variables.
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
    return fsspec.filesystem(protocol, **options)


class ReadThroughCache:
    """A local copy of every remote object read, validated by the object's ETag.

    The paper's Alluxio cache in miniature: the first read of an object downloads it into
    ``directory``; later reads of the same unchanged object (same ETag, or size and
    modification time) come from local disk, and an object replaced on the server is
    downloaded again. If the server no longer has the object, the cached copy is served.
    Writes go through a temporary file and an atomic rename, so concurrent readers in a
    thread pool never see a partial file (fsspec's ``filecache`` is not thread-safe).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def read(self, fs: fsspec.AbstractFileSystem, path: str) -> bytes:
        """The bytes of ``path`` on ``fs``, from the cache when it holds the current version."""
        blob = self.directory / hashlib.sha256(path.encode()).hexdigest()
        tag_file = blob.with_suffix(".etag")
        try:
            tag = version_tag(fs.info(path))
        except FileNotFoundError:
            if blob.exists():
                return blob.read_bytes()
            raise
        if blob.exists() and tag_file.exists() and tag_file.read_text() == tag:
            return blob.read_bytes()
        data: bytes = fs.cat_file(path)
        atomic_write(blob, data)
        atomic_write(tag_file, tag.encode())
        return data


def version_tag(info: Mapping[str, Any]) -> str:
    """What identifies one version of an object: its ETag, else size and mtime."""
    tag = info.get("ETag") or info.get("etag")
    if tag:
        return str(tag)
    return f"{info.get('size')}-{info.get('LastModified') or info.get('mtime')}"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


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
