"""Dataset specs: what an application-tailored dataset should contain (main paper, 3.4.3).

A spec names the label set, the sample constraints, per-label quotas, whether visually
matched supplementary samples may join, and the split ratios. It is read from YAML or
JSON and validated field by field; a mistake is a :class:`~samplehub.errors.ConfigError`
that names the field (``spec field 'split.ratios': ...``).

Example::

    name: rivers-and-bridges
    labels: [river, bridge]
    constraints:
      bbox: [5.0, 45.0, 15.0, 50.0]      # min lon, min lat, max lon, max lat (EPSG:4326)
      time: [2017-01-01, 2018-12-31]
      datasets: [uc_merced, eurosat]
      sensors: [sentinel-2]
    quotas: {river: 500, bridge: 200}    # or one number for every label
    include_supplementary: true
    supplementary_per_label: 100
    split: {ratios: {train: 0.8, val: 0.1, test: 0.1}, seed: 42, hilbert_level: 14}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from samplehub.errors import ConfigError
from samplehub.hilbert import HILBERT_ORDER
from samplehub.retrieval.types import IndexChoice, QuerySpec

SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class Constraints(BaseModel):
    """Step 1 filters of every per-label subquery."""

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="min lon, min lat, max lon, max lat in EPSG:4326"
    )
    polygon_wkt: str | None = Field(default=None, description="a polygon in EPSG:4326 (WKT)")
    time: tuple[datetime, datetime] | None = Field(
        default=None, description="acquisition-time range [start, end] (ISO 8601 dates or times)"
    )
    datasets: list[str] | None = Field(default=None, description="only these datasets")
    sensors: list[str] | None = Field(default=None, description="only these sensors")

    @field_validator("time", mode="before")
    @classmethod
    def _dates_are_times(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [
                datetime(v.year, v.month, v.day) if type(v) is date else v for v in value
            ]
        return value

    @field_validator("time")
    @classmethod
    def _time_is_ordered(
        cls, value: tuple[datetime, datetime] | None
    ) -> tuple[datetime, datetime] | None:
        if value is None:
            return None
        start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in value)
        if start > end:
            raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")
        return start, end

    @field_validator("bbox")
    @classmethod
    def _bbox_is_valid(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is None:
            return None
        minx, miny, maxx, maxy = value
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError(
                f"{list(value)} is not [min lon, min lat, max lon, max lat] within "
                "[-180, -90, 180, 90] with min <= max"
            )
        return value


class SplitSpec(BaseModel):
    """Split ratios (summing to 1) and the seed of the per-label shuffle."""

    model_config = ConfigDict(extra="forbid")

    ratios: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    seed: int = Field(default=0, ge=0, description="seed of the per-label shuffle (numpy "
                      "random generators take non-negative seeds)")
    hilbert_level: int | None = Field(
        default=14,
        ge=0,
        le=HILBERT_ORDER,
        description="samples whose bbox centres share a Hilbert cell of this quadtree level "
        "(2**level cells per axis over lon/lat; 14: about 2.4 km x 1.2 km at the equator) "
        "go to one split, as copies of one image always do; null: only copies",
    )

    @field_validator("ratios")
    @classmethod
    def _ratios_are_valid(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name at least one split, e.g. {train: 1.0}")
        bad = [name for name in value if not SPLIT_NAME.match(name)]
        if bad:
            raise ValueError(f"split names {bad} may hold only letters, digits, '_' and '-'")
        negative = {k: v for k, v in value.items() if v < 0}
        if negative:
            raise ValueError(f"ratios must be >= 0, got {negative}")
        if abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1, got {sum(value.values()):g}")
        return value


class DatasetSpec(BaseModel):
    """An application-tailored dataset: labels, constraints, quotas, supplementary, splits."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="name of the dataset (used for exports)")
    labels: list[str] = Field(..., min_length=1, description="the dataset's label set")
    constraints: Constraints = Field(default_factory=lambda: Constraints())
    quotas: dict[str, int] | int | None = Field(
        default=None, description="most samples per label: one number for all or {label: n}"
    )
    include_supplementary: bool = Field(
        default=True, description="add visually matched samples of associated labels"
    )
    supplementary_per_label: int = Field(default=100, ge=1, le=100_000)
    max_label_distance: float | None = Field(default=None, ge=0)
    similarity_threshold: float | None = None
    index: IndexChoice = "auto"
    split: SplitSpec = Field(default_factory=SplitSpec)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        if not SPLIT_NAME.match(value):
            raise ValueError(f"{value!r} may hold only letters, digits, '_' and '-'")
        return value

    @field_validator("labels")
    @classmethod
    def _labels_are_unique(cls, value: list[str]) -> list[str]:
        stripped = [v.strip() for v in value]
        if any(not v for v in stripped):
            raise ValueError("labels must not be empty strings")
        twice = sorted({v for v in stripped if stripped.count(v) > 1})
        if twice:
            raise ValueError(f"labels {twice} are listed more than once")
        return stripped

    @model_validator(mode="after")
    def _quotas_name_known_labels(self) -> DatasetSpec:
        quotas = self.quotas
        if isinstance(quotas, int):
            if quotas < 1:
                raise ValueError(f"quotas must be >= 1, got {quotas}")
        elif quotas is not None:
            unknown = sorted(set(quotas) - set(self.labels))
            if unknown:
                raise ValueError(f"quotas name labels {unknown} that are not in labels")
            small = {k: v for k, v in quotas.items() if v < 1}
            if small:
                raise ValueError(f"quotas must be >= 1, got {small}")
        return self

    def quota(self, label: str) -> int | None:
        """Most samples of ``label`` (``None``: no limit)."""
        if isinstance(self.quotas, int):
            return self.quotas
        return (self.quotas or {}).get(label)

    def query_spec(self) -> QuerySpec:
        """The query whose per-label subqueries collect this dataset's candidates."""
        c = self.constraints
        return QuerySpec(
            labels=tuple(self.labels),
            bbox=c.bbox,
            polygon_wkt=c.polygon_wkt,
            time_range=c.time,
            datasets=tuple(c.datasets) if c.datasets else None,
            sensors=tuple(c.sensors) if c.sensors else None,
            k=self.supplementary_per_label,
            include_supplementary=self.include_supplementary,
            max_label_distance=self.max_label_distance,
            similarity_threshold=self.similarity_threshold,
            index=self.index,
        )

    @property
    def spec_id(self) -> str:
        """Id of the query behind this spec; feedback is keyed by it (see :func:`query_id`)."""
        return query_id(self.query_spec())


def query_id(spec: QuerySpec) -> str:
    """A stable 16-hex-digit id of a query (the same query gives the same id).

    Quotas and splits are not part of it: feedback on a query's samples applies to every
    dataset spec that runs the same query.
    """
    fields = asdict(spec)
    fields["labels"] = sorted(spec.labels)
    if spec.landcover is None:
        del fields["landcover"]  # ids of queries without land cover predate the field
    canonical = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_spec(raw: Any, source: str = "spec") -> DatasetSpec:
    """Validate a mapping as a :class:`DatasetSpec`.

    Raises:
        ConfigError: naming ``source`` and each offending field.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping with keys name, labels, constraints, quotas, ..., "
            f"got {type(raw).__name__}"
        )
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc)}") from exc


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: ``spec field 'split.ratios': ratios must sum to 1, got 0.9``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"spec field {where!r}: {message}")
    return "; ".join(lines)


def load_spec(path: str | Path) -> DatasetSpec:
    """Read a spec from a YAML (``.yaml``/``.yml``) or JSON file.

    Raises:
        ConfigError: the file is missing, unparsable or invalid (naming file and field).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"dataset spec {path} does not exist") from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    return parse_spec(raw, str(path))
