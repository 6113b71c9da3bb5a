"""SampleHub's exceptions.

Each subclass also subclasses the builtin a caller would naturally catch, so
``except FileNotFoundError`` still works. Messages say what was looked for, where,
and the setting or command that fixes it, and never the credentials of a URL
(:func:`without_credentials`).
"""

from __future__ import annotations

import re


def without_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed."""
    return re.sub(r"(\w[\w+.-]*://)[^/@\s]+@", r"\1", text)


class SampleHubError(Exception):
    """Base class of every error SampleHub raises on purpose."""


class SourceNotFoundError(SampleHubError, FileNotFoundError):
    """A dataset source (folder, manifest, bucket, key) does not exist."""


class SourceAccessError(SampleHubError, PermissionError):
    """A source exists but cannot be read (permissions, wrong credentials)."""


class InvalidSampleError(SampleHubError, ValueError):
    """One sample cannot be read: corrupt or truncated image, unknown band layout, ..."""


class ManifestError(SampleHubError, ValueError):
    """A manifest file is malformed or names something that is not there."""


class ConfigError(SampleHubError, ValueError):
    """A configuration key is unknown, missing or of the wrong type."""


class LookupFailedError(SampleHubError, KeyError):
    """A name or id looked up is not there; its message prints as written."""

    def __str__(self) -> str:
        """The message as given (``KeyError`` alone would print it quoted)."""
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(LookupFailedError):
    """A dataset name is not in the catalog's registry."""


class SampleNotFoundError(LookupFailedError):
    """A sample id is not in the catalog."""


class IndexNotTrainedError(SampleHubError, RuntimeError):
    """An index or model is asked for before it was built."""


class OptionalDependencyError(SampleHubError, ImportError):
    """A feature needs an extra that is not installed.

    Args:
        package: the missing import, as the message names it.
        extra: the samplehub extra that installs it (``pip install 'samplehub[<extra>]'``).
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'samplehub[{extra}]'"
        )


class LabelGraphError(SampleHubError, ValueError):
    """A label tree, label name, override or label-graph operation is invalid."""


class ManifestRowError(ManifestError, InvalidSampleError):
    """One manifest row names a sample that is not there; the row is quarantined, not fatal."""


class BuildNotFoundError(LookupFailedError):
    """A logical dataset (build) id is not among the stored builds."""


class ExportExistsError(SampleHubError, FileExistsError):
    """An export's target directory already exists and overwriting was not asked for."""


class UnknownLabelError(LookupFailedError):
    """A query names a label that is not in the label graph."""


class QueryError(SampleHubError, ValueError):
    """A query is malformed or asks for something the repository cannot answer yet."""


class ModelRegistryError(SampleHubError, RuntimeError):
    """The MLflow registry failed to answer (database or server error), not "no such model"."""


class LabellingViewNotFoundError(LookupFailedError):
    """A labelling view (or a chip or segment of one) is not stored under the home."""


class LabellingError(SampleHubError, ValueError):
    """A labelling view's input, a label action or a publish request is invalid."""


class StorageError(SampleHubError, OSError):
    """The catalog's or the store's storage failed after its retries (a server down)."""


class UploadTooLargeError(SampleHubError, ValueError):
    """An upload is larger than ``max_upload_mb``."""
