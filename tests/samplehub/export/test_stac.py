"""The exported STAC Collection validates offline.

Three checks, none of which may reach the network (sockets refuse to connect):

* STAC core: the Item and Collection JSON Schemas that pystac ships for its STAC version,
  resolved through a registry that has no way to fetch a missing ``$ref``;
* stac-pydantic's Item and Collection models;
* the label extension v1.0.1: no installable package ships its JSON Schema, so its rules
  (required ``label:description``, ``label:type`` and ``label:properties``; ``label:type``
  one of ``vector``/``raster``; named classes for vector labels; no other ``label:`` fields)
  are read back through pystac's :class:`LabelExtension` and checked here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pystac
import pytest
from pystac.extensions.label import LabelExtension, LabelType
from pystac.validation.local_validator import get_local_schema_cache
from query_double import fake_run_query
from referencing import Registry, Resource
from stac_pydantic import Collection as CollectionModel
from stac_pydantic import Item as ItemModel

from samplehub.export import build_dataset, export_dataset, parse_spec
from samplehub.repository import Repository

SPEC = {
    "name": "rivers",
    "labels": ["river", "farmland", "Pastures"],
    "split": {"ratios": {"train": 0.5, "val": 0.5}, "seed": 3},
}
SCHEMAS = get_local_schema_cache()
REGISTRY = Registry().with_resources(  # no retrieve: an unknown $ref fails, never fetches
    (uri, Resource.from_contents(schema)) for uri, schema in SCHEMAS.items()
)
LABEL_FIELDS = {
    "label:properties", "label:classes", "label:description", "label:type", "label:tasks",
    "label:methods", "label:overviews",
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every socket refuses to connect while a test validates."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("validation must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture
def exported(small_repo: Repository, tmp_path: Path) -> Path:
    logical = build_dataset(small_repo, parse_spec(SPEC), query=fake_run_query)
    out = tmp_path / "export"
    export_dataset(small_repo, logical, out)
    return out


def core_errors(stac: dict[str, Any]) -> list[str]:
    """Messages of the STAC core JSON Schema of ``stac``'s type and version."""
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}[stac["type"]]
    uri = (
        f"https://schemas.stacspec.org/v{stac['stac_version']}/{kind}-spec/json-schema/{kind}.json"
    )
    schema = SCHEMAS[uri]
    validator = jsonschema.validators.validator_for(schema)(schema, registry=REGISTRY)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(stac)]


def label_errors(stac: dict[str, Any]) -> list[str]:
    """Violations of the label extension v1.0.1's rules for an Item."""
    try:
        label = LabelExtension.ext(pystac.Item.from_dict(stac))  # needs the schema URI
        description, kind = label.label_description, label.label_type  # required
    except (pystac.ExtensionNotImplemented, pystac.RequiredPropertyMissing, ValueError) as e:
        return [str(e)]
    properties = stac["properties"]
    errors = [f"unknown field {k}" for k in properties if k.startswith("label:")
              and k not in LABEL_FIELDS]
    if "label:properties" not in properties:
        errors.append("label:properties is required")
    elif properties["label:properties"] is not None and not (
        properties["label:properties"]
        and all(isinstance(p, str) for p in properties["label:properties"])
    ):
        errors.append("label:properties must be null or a non-empty list of strings")
    if not description:
        errors.append("label:description must not be empty")
    for classes in label.label_classes or []:
        if kind == LabelType.VECTOR and not classes.name:
            errors.append("vector labels name their classes")
        if not all(isinstance(c, str) for c in classes.classes) and not all(
            isinstance(c, int | float) for c in classes.classes
        ):
            errors.append("label:classes are all strings or all numbers")
    return errors


def test_the_export_is_a_stac_collection_that_validates_offline(
    exported: Path, offline: None
) -> None:
    collection = pystac.Collection.from_file(str(exported / "stac" / "collection.json"))
    items = list(collection.get_items())
    assert len(items) == len(pd.read_parquet(exported / "manifest.parquet")) > 0
    for stac in [collection.to_dict(), *(item.to_dict() for item in items)]:
        assert core_errors(stac) == [], stac["id"]
    CollectionModel.model_validate(collection.to_dict())
    for item in items:
        ItemModel.model_validate(item.to_dict())
        assert label_errors(item.to_dict()) == [], item.id
    summaries = LabelExtension.summaries(collection)
    assert [c.classes for c in summaries.label_classes or []] == [SPEC["labels"]]


def test_the_checks_reject_what_the_schemas_reject(exported: Path, offline: None) -> None:
    item_file = next((exported / "stac").glob("*/*.json"))
    stac = json.loads(item_file.read_text())
    assert core_errors(stac) == [] and label_errors(stac) == []
    no_time = json.loads(item_file.read_text())
    del no_time["properties"]["datetime"]
    assert core_errors(no_time)
    bad_type = json.loads(item_file.read_text())
    bad_type["properties"]["label:type"] = "mask"
    assert label_errors(bad_type)
    unknown = json.loads(item_file.read_text())
    unknown["properties"]["label:colour"] = "blue"
    assert label_errors(unknown) == ["unknown field label:colour"]
    no_extension = json.loads(item_file.read_text())
    no_extension["stac_extensions"] = []
    assert label_errors(no_extension)


def test_items_carry_the_sample_its_label_and_a_relative_image(exported: Path) -> None:
    collection = pystac.Collection.from_file(str(exported / "stac" / "collection.json"))
    by_label = {item.properties["label"]: item for item in collection.get_items()}
    pasture, river = by_label["Pastures"], by_label["river"]
    assert pasture.geometry is not None and pasture.geometry["type"] == "Polygon"
    assert pasture.bbox is not None and pasture.properties["samplehub:time"] in (
        "acquired", "ingested")
    assert river.geometry is None and river.bbox is None
    assert river.properties["samplehub:time"] == "ingested" and river.datetime is not None
    label = LabelExtension.ext(river)
    assert label.label_properties == ["label"] and label.label_type == LabelType.VECTOR
    assert [c.classes for c in label.label_classes or []] == [SPEC["labels"]]
    raw = json.loads((exported / "stac" / river.id / f"{river.id}.json").read_text())
    href = raw["assets"]["image"]["href"]
    assert not href.startswith("/") and (exported / "stac" / river.id / href).resolve().is_file()
    assert all(not link["href"].startswith("/") for link in raw["links"])
