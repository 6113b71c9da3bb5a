"""Fixtures for the source tests: fixture data on local disk and on a loopback S3 server.

The S3 side is moto's server mode on 127.0.0.1 (a real HTTP server that speaks the S3
protocol), started once per session; the fixture datasets from ``tests/data`` and a small
subset of the real data in ``../shared/data`` (the ``shared_data`` fixture of
``tests/conftest.py`` skips when it is absent) are uploaded to it with boto3. The same source
tests then run against both places through :class:`Where`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from samplehub.records import FileEntry
from samplehub.sources import Source, SourceSpec, open_source

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "data"

FIXTURE_BUCKET = "samplehub-fixtures"
REAL_BUCKET = "samplehub-real-subset"
CREDENTIALS = {"key": "testing-key", "secret": "testing-secret"}
# The ``entries`` fixture: a source (and batch size) -> every entry it discovers.
Entries = Callable[..., list[FileEntry]]
UCMERCED_SUBSET = {"agricultural": 5, "airplane": 5}
BIGEARTHNET_SUBSET = (
    "BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48",
    "BigEarthNet-S1-Example/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48",
)


@dataclass(frozen=True)
class Where:
    """A place holding datasets: a local folder or an S3 bucket, plus how to reach it.

    S3 places read through a local file cache (``cache_dir``), as ingestion does.
    """

    name: str
    root: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None

    def uri(self, *parts: str) -> str:
        """The URI of ``parts`` under the root."""
        return "/".join([self.root, *parts])

    def spec(self, name: str, *parts: str, **kwargs: Any) -> SourceSpec:
        """A source spec for the dataset at ``parts`` under the root."""
        return SourceSpec(
            name=name, uri=self.uri(*parts), storage_options=self.storage_options, **kwargs
        )

    def open(self, name: str, *parts: str, **kwargs: Any) -> Source:
        """Open the source for the dataset at ``parts`` under the root (kind auto-detected)."""
        return open_source(self.spec(name, *parts, **kwargs), self.cache_dir)


@dataclass(frozen=True)
class S3Server:
    """A running loopback S3 server and a boto3 client on it."""

    endpoint_url: str
    client: Any

    def storage_options(self, **overrides: str) -> dict[str, str]:
        """s3fs options for this server (``endpoint_url``, ``key``, ``secret``)."""
        return {"endpoint_url": self.endpoint_url, **CREDENTIALS, **overrides}

    def upload(self, bucket: str, local: Path, prefix: str) -> int:
        """Upload a file, or every file under a folder, to ``bucket/prefix``; the file count."""
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            key = prefix if local.is_file() else f"{prefix}/{path.relative_to(local).as_posix()}"
            self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        return len(files)


@pytest.fixture
def entries() -> Entries:
    """A function: every entry a source discovers, its batches concatenated."""

    def all_entries(source: Source, batch_size: int = 2048) -> list[FileEntry]:
        return [entry for batch in source.discover(batch_size) for entry in batch]

    return all_entries


@pytest.fixture
def fixtures() -> Path:
    """``tests/data`` (read-only: use ``fixture_copy`` to break files)."""
    return FIXTURES


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port for the whole session."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["key"],
        aws_secret_access_key=CREDENTIALS["secret"],
        region_name="us-east-1",
    )
    try:
        yield S3Server(endpoint, client)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fixture_bucket(s3_server: S3Server) -> str:
    """A bucket holding copies of the fixture datasets under the same folder names."""
    s3_server.client.create_bucket(Bucket=FIXTURE_BUCKET)
    for dataset in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        s3_server.upload(FIXTURE_BUCKET, dataset, dataset.name)
    return FIXTURE_BUCKET


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """The fixture datasets on local disk, then on the loopback S3 server."""
    if request.param == "local":
        return Where("local", str(FIXTURES))
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("fixture_bucket")
    return Where("s3", f"s3://{bucket}", server.storage_options(), tmp_path / "s3-cache")


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Path:
    """A writable copy of ``tests/data`` (for tests that break files)."""
    copy = tmp_path / "data"
    shutil.copytree(FIXTURES, copy, ignore=shutil.ignore_patterns("*.py"))
    return copy


@pytest.fixture(scope="session")
def real_bucket(s3_server: S3Server, shared_data: Path) -> str:
    """A bucket with a small subset of the real data, in the same layout as ``shared/data``.

    UC Merced: 2 classes x 5 images; the full multi-label manifest; one BigEarthNet S2 and
    one S1 patch; all RGBN GeoTIFFs.
    """
    s3_server.client.create_bucket(Bucket=REAL_BUCKET)
    for label, n in UCMERCED_SUBSET.items():
        for image in sorted((shared_data / "ucmerced" / "Images" / label).iterdir())[:n]:
            s3_server.upload(REAL_BUCKET, image, f"ucmerced/Images/{label}/{image.name}")
    manifest = "ucmerced_multilabel/LandUse_Multilabeled.txt"
    s3_server.upload(REAL_BUCKET, shared_data / manifest, manifest)
    for patch in BIGEARTHNET_SUBSET:
        folder = f"bigearthnet_examples/{patch}"
        s3_server.upload(REAL_BUCKET, shared_data / folder, folder)
    for tif in sorted((shared_data / "multispectral_rgbn").glob("*.tif")):
        s3_server.upload(REAL_BUCKET, tif, f"multispectral_rgbn/{tif.name}")
    return REAL_BUCKET


@pytest.fixture(params=["local", "s3"])
def real_where(request: pytest.FixtureRequest, shared_data: Path, tmp_path: Path) -> Where:
    """The real data on local disk, then its subset on the loopback S3 server."""
    if request.param == "local":
        return Where("local", str(shared_data))
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("real_bucket")
    return Where("s3", f"s3://{bucket}", server.storage_options(), tmp_path / "s3-cache")
