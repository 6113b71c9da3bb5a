"""One set of object-storage settings, translated for each client that reads or writes it.

DESIGN.md section 3: with ``storage=s3`` the catalog's Delta tables (delta-rs), the Zarr
sample stores (zarr over s3fs) and the uploads of tests and tools (boto3) all reach the same
bucket, but each client names the same settings differently: delta-rs takes object_store's
upper-case keys (``AWS_ENDPOINT_URL``), s3fs takes ``endpoint_url``/``key``/``secret`` with
the region under ``client_kwargs``, boto3 takes ``endpoint_url``/``aws_access_key_id``.
``storage.storage_options`` is written once, in either spelling, and :class:`ObjectStorage`
hands each client its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from samplehub.errors import ConfigError, SampleHubError, StorageError

# The packages whose exceptions mean "the storage failed": the S3 clients and delta-rs.
STORAGE_PACKAGES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "deltalake", "urllib3")

# Accepted spellings of each setting (the object_store key first), case-insensitive.
SPELLINGS = {
    "endpoint_url": ("AWS_ENDPOINT_URL", "endpoint_url", "endpoint"),
    "region": ("AWS_REGION", "region", "region_name", "AWS_DEFAULT_REGION"),
    "key": ("AWS_ACCESS_KEY_ID", "key", "aws_access_key_id"),
    "secret": ("AWS_SECRET_ACCESS_KEY", "secret", "aws_secret_access_key"),
    "token": ("AWS_SESSION_TOKEN", "token", "aws_session_token"),
    "allow_http": ("AWS_ALLOW_HTTP", "allow_http"),
    "max_retries": ("max_retries", "retries"),
    "retry_timeout": ("retry_timeout",),
    "timeout": ("timeout", "request_timeout"),
}
_NAMES = {spelling.lower(): name for name, spellings in SPELLINGS.items() for spelling in spellings}


@dataclass(frozen=True)
class ObjectStorage:
    """S3 settings by meaning (``None``: unset, the client's own default applies).

    Unset credentials leave each client to its usual chain (``AWS_*`` environment
    variables, ``~/.aws``), so nothing secret has to be written into ``conf/``.
    """

    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = None
    secret: str | None = None
    token: str | None = None
    allow_http: bool | None = None
    max_retries: int | None = None
    """Retries of a failed request (5xx, throttling, reset, timeout) before giving up."""
    retry_timeout: float | None = None
    """Seconds after the first attempt past which no retry starts (delta-rs)."""
    timeout: float | None = None
    """Seconds one request may take (connect and read)."""

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None, where: str = "storage.storage_options"
              ) -> ObjectStorage:
        """Read ``options`` in any accepted spelling.

        Raises:
            ConfigError: an unknown key, or one setting given twice, naming the key.
        """
        values: dict[str, Any] = {}
        for raw_key, value in (options or {}).items():
            name = _NAMES.get(str(raw_key).lower())
            if name is None:
                known = ", ".join(s[0] for s in SPELLINGS.values())
                raise ConfigError(f"{where}.{raw_key}: unknown object-storage setting; use "
                                  f"one of {known} (or their s3fs/boto3 spellings)")
            if value is None or value == "":
                continue
            if name in values:
                raise ConfigError(f"{where}.{raw_key}: {name} is given twice")
            values[name] = value
        if "allow_http" in values:
            values["allow_http"] = str(values["allow_http"]).lower() in ("1", "true", "yes")
        for name, kind in (("max_retries", int), ("retry_timeout", float), ("timeout", float)):
            if name in values:
                try:
                    values[name] = kind(values[name])
                except ValueError:
                    raise ConfigError(f"{where}.{name}: expected a number of "
                                      f"{'retries' if kind is int else 'seconds'}, "
                                      f"got {values[name]!r}") from None
        return cls(**values)

    def for_delta(self) -> dict[str, str]:
        """delta-rs / object_store options (all values strings)."""
        out = {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": self.region,
               "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
               "AWS_SESSION_TOKEN": self.token}
        options = {k: str(v) for k, v in out.items() if v is not None}
        if self.allow_http is not None:
            options["AWS_ALLOW_HTTP"] = "true" if self.allow_http else "false"
        elif self.endpoint_url and self.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"  # an http:// endpoint is meant to be used
        if self.max_retries is not None:
            options["max_retries"] = str(self.max_retries)
        if self.retry_timeout is not None:
            options["retry_timeout"] = f"{self.retry_timeout:g}s"
        if self.timeout is not None:
            options["timeout"] = f"{self.timeout:g}s"
        return options

    def for_fsspec(self) -> dict[str, Any]:
        """s3fs options (as zarr's ``storage_options`` and ``fsspec.filesystem('s3')``)."""
        options: dict[str, Any] = {k: v for k, v in (("key", self.key), ("secret", self.secret),
                                                     ("token", self.token)) if v is not None}
        client = {k: v for k, v in (("endpoint_url", self.endpoint_url),
                                    ("region_name", self.region)) if v is not None}
        if client:
            options["client_kwargs"] = client
        config = self._botocore_config()
        if config:
            options["config_kwargs"] = config
        return options

    def _botocore_config(self) -> dict[str, Any]:
        """The botocore ``Config`` arguments: standard retry mode (5xx, throttling, resets)."""
        config: dict[str, Any] = {}
        if self.max_retries is not None:
            config["retries"] = {"max_attempts": self.max_retries + 1, "mode": "standard"}
        if self.timeout is not None:
            config["connect_timeout"] = config["read_timeout"] = self.timeout
        return config

    def for_boto3(self) -> dict[str, Any]:
        """``boto3.client('s3', **...)`` keyword arguments."""
        pairs = (("endpoint_url", self.endpoint_url), ("region_name", self.region),
                 ("aws_access_key_id", self.key), ("aws_secret_access_key", self.secret),
                 ("aws_session_token", self.token))
        options: dict[str, Any] = {k: v for k, v in pairs if v is not None}
        config = self._botocore_config()
        if config:
            from botocore.config import Config

            options["config"] = Config(**config)
        return options


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the storage (I/O, an S3 client, delta-rs), not our code."""
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or module in STORAGE_PACKAGES


@contextmanager
def storage_failures(where: str, then: str) -> Iterator[None]:
    """Turn a storage failure inside the block into one :class:`StorageError`.

    Args:
        where: the location written or read (a table or store URI; never credentials).
        then: what the user can do next, appended to the message.
    """
    try:
        yield
    except SampleHubError:
        raise
    except Exception as exc:
        if not is_storage_failure(exc):
            raise
        raise StorageError(f"{where}: {type(exc).__name__}: {exc} (after the configured "
                           f"retries, storage.storage_options.max_retries); {then}") from exc
