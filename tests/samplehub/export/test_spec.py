"""Dataset specs: YAML/JSON parsing and errors that name the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from samplehub.errors import ConfigError
from samplehub.export.spec import load_spec, parse_spec

SPEC_YAML = """\
name: rivers
labels: [river, farmland]
constraints:
  bbox: [5.0, 45.0, 15.0, 50.0]
  time: [2017-01-01, 2018-12-31]
  datasets: [tree]
quotas: {river: 3}
include_supplementary: true
split: {ratios: {train: 0.5, val: 0.5}, seed: 7}
"""


def test_yaml_and_json_specs_read_alike(tmp_path: Path) -> None:
    yaml_path = tmp_path / "spec.yaml"
    yaml_path.write_text(SPEC_YAML)
    spec = load_spec(yaml_path)
    assert spec.constraints.time == (datetime(2017, 1, 1, tzinfo=UTC),
                                     datetime(2018, 12, 31, tzinfo=UTC))
    assert spec.quota("river") == 3 and spec.quota("farmland") is None
    query = spec.query_spec()
    assert query.labels == ("river", "farmland") and query.datasets == ("tree",)
    json_path = tmp_path / "spec.json"
    json_path.write_text(json.dumps(spec.model_dump(mode="json")))
    again = load_spec(json_path)
    assert again == spec and again.spec_id == spec.spec_id


def test_spec_id_ignores_quotas_and_splits_but_not_labels() -> None:
    base = {"name": "a", "labels": ["river", "farmland"]}
    a = parse_spec(base)
    b = parse_spec({**base, "name": "b", "quotas": 2, "split": {"ratios": {"train": 1.0}}})
    c = parse_spec({**base, "labels": ["farmland", "river"]})
    d = parse_spec({**base, "labels": ["river"]})
    assert a.spec_id == b.spec_id == c.spec_id != d.spec_id


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"labels": ["river"]}, "spec field 'name': Field required"),
        ({"name": "x", "labels": []}, "spec field 'labels'"),
        ({"name": "x", "labels": ["river", "river"]}, "listed more than once"),
        ({"name": "x", "labels": ["river"], "split": {"ratios": {"train": 0.5}}},
         "spec field 'split.ratios': ratios must sum to 1"),
        ({"name": "x", "labels": ["river"], "quotas": {"lake": 3}},
         "quotas name labels ['lake']"),
        ({"name": "x", "labels": ["river"], "constraints": {"bbox": [10, 0, 5, 1]}},
         "spec field 'constraints.bbox'"),
        ({"name": "x", "labels": ["river"], "constraints": {"time": ["2019-01-01", "2018-01-01"]}},
         "is after end"),
        ({"name": "x", "labels": ["river"], "constraints": {"sensor": ["s2"]}},
         "spec field 'constraints.sensor': Extra inputs are not permitted"),
        ({"name": "a b", "labels": ["river"]}, "spec field 'name'"),
        (["river"], "expected a mapping"),
    ],
)
def test_invalid_specs_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(raw)
    assert message in str(info.value)


def test_missing_and_broken_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid yaml"):
        load_spec(broken)
