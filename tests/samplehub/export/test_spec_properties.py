"""The dataset spec parser on generated input (Hypothesis): any JSON value is either a
valid spec, with a stable id, or a ConfigError naming the source; nothing else escapes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from samplehub.errors import ConfigError
from samplehub.export import parse_spec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
KEYS = ["constraints", "quotas", "split", "k", "include_supplementary",
        "supplementary_per_label", "ratios", "seed", "bbox", "datasets"]
near_specs = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=10), "labels": st.lists(st.text(max_size=8),
                                                                  max_size=3)},
    optional={key: json_values for key in KEYS})


def check(raw: Any) -> None:
    try:
        spec = parse_spec(raw, source="generated.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("generated.yaml: ")
        return
    again = parse_spec(spec.model_dump(mode="json"), source="round trip")
    assert again.spec_id == spec.spec_id, "a parsed spec round-trips to the same id"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(raw=json_values)
def test_any_json_value_parses_or_is_a_config_error(raw: Any) -> None:
    check(raw)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(raw=near_specs)
def test_near_valid_specs_parse_or_name_their_fields(raw: dict[str, Any]) -> None:
    check(raw)


valid_specs = st.fixed_dictionaries(
    {"name": st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
     "labels": st.lists(st.from_regex(r"[A-Za-z][A-Za-z ]{0,8}[A-Za-z]", fullmatch=True),
                        min_size=1, max_size=3, unique=True)},
    optional={"split": st.integers(1, 9).map(
        lambda t: {"ratios": {"train": t / 10, "val": 1 - t / 10}, "seed": t}),
        "include_supplementary": st.booleans()})


@settings(max_examples=200, deadline=None, derandomize=True)
@given(raw=valid_specs)
def test_valid_specs_parse_and_round_trip(raw: dict[str, Any]) -> None:
    spec = parse_spec(raw)
    assert spec.name == raw["name"] and list(spec.labels) == raw["labels"]
    check(raw)
