"""S3-only behaviour against the loopback moto server: missing bucket, refused credentials,
and the local read-through cache (the paper's Alluxio role, main paper section 3.2)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from samplehub.errors import InvalidSampleError, SourceAccessError, SourceNotFoundError
from samplehub.sources import SourceSpec, open_source

if TYPE_CHECKING:
    from conftest import Entries, S3Server

pytestmark = pytest.mark.integration


@contextmanager
def iam_authentication(endpoint_url: str) -> Iterator[None]:
    """Make the moto server check credentials (it accepts any by default).

    ``POST /moto-api/reset-auth`` sets the server's ``INITIAL_NO_AUTH_ACTION_COUNT``, the same
    setting as the env var of that name: 0 means every request must be signed with an access
    key that exists in the server's IAM. Restored to "never check" on exit.
    """
    set_auth_count(endpoint_url, b"0")
    try:
        yield
    finally:
        set_auth_count(endpoint_url, b"inf")


def set_auth_count(endpoint_url: str, count: bytes) -> None:
    """POST the number of requests the server lets through unauthenticated."""
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth",
        data=count,
        headers={"Content-Type": "application/octet-stream"},  # not a form: moto reads raw data
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def test_a_missing_bucket_is_source_not_found_naming_it(s3_server: S3Server) -> None:
    spec = SourceSpec(
        "x", "s3://no-such-bucket/ucmerced", storage_options=s3_server.storage_options()
    )
    with pytest.raises(SourceNotFoundError, match="bucket 'no-such-bucket'"):
        open_source(spec)


def test_a_missing_prefix_is_source_not_found(s3_server: S3Server, fixture_bucket: str) -> None:
    uri = f"s3://{fixture_bucket}/not-there"
    with pytest.raises(SourceNotFoundError, match=uri):
        open_source(SourceSpec("x", uri, storage_options=s3_server.storage_options()))


@pytest.mark.parametrize("path", ["", "/folder_tree"])
def test_wrong_credentials_are_source_access_errors(
    s3_server: S3Server, fixture_bucket: str, path: str
) -> None:
    uri = f"s3://{fixture_bucket}{path}"
    options = s3_server.storage_options(key="AKIAWRONGKEY0000000", secret="wrong")
    with iam_authentication(s3_server.endpoint_url), pytest.raises(SourceAccessError) as info:
        open_source(SourceSpec("x", uri, storage_options=options))
    assert uri in str(info.value) and "storage_options key/secret" in str(info.value)


def test_second_read_is_served_from_the_cache_dir(
    s3_server: S3Server, fixtures: Path, tmp_path: Path, entries: Entries
) -> None:
    bucket = "samplehub-cache-test"
    s3_server.client.create_bucket(Bucket=bucket)
    s3_server.upload(bucket, fixtures / "geotiff", "tifs")
    cache = tmp_path / "cache"
    spec = SourceSpec("tifs", f"s3://{bucket}/tifs", storage_options=s3_server.storage_options())
    source = open_source(spec, cache_dir=cache)
    entry = entries(source)[0]
    first = source.read(entry)
    assert [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1000]
    s3_server.client.delete_object(Bucket=bucket, Key="tifs/scene_a.tif")
    again = open_source(spec, cache_dir=cache).read(entry)
    assert again.checksum == first.checksum
    uncached = open_source(spec)
    with pytest.raises(InvalidSampleError, match=r"scene_a\.tif: cannot read file"):
        uncached.read(entry)
