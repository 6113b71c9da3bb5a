"""Schemathesis fuzz cases that get past validation: generated requests mixed with real values.

Shared by ``tests/samplehub/api/test_api_fuzz.py`` (in process) and ``bench/soak.py``'s fuzz
row (a live ``samplehub serve``). Both fuzz the small real repository of
``tests/asset_jobs.py`` (``build_real_repository``) with the labelling view of
``labelling_fixture.py`` added (40 EuroSAT chips as the catalog dataset ``chips``), so that
every operation has something real to act on (:func:`build_fuzz_repository`).

Schemathesis generates each operation's cases from the served OpenAPI schema:
``POSITIVE_SHARE`` of them positive (schema-valid), the rest negative (schema-invalid). A
generated id, label or dataset name almost never exists, so on its own nearly every request
stops at a 404 or a 422. In a positive case each field that names something in the
repository (a path or query parameter, or a top-level body field) is therefore replaced, in
a Hypothesis choice weighted ``REAL_SHARE`` to the rest, by a value drawn from
:class:`RealValues`: catalog sample ids, label-graph labels, dataset names, labelling view
chips and segments, valid bbox, time-range and split settings, real images, and the
``spec_id`` and ``build_id`` values that earlier answers returned (:meth:`RealValues.harvest`:
the chaining that OpenAPI links give a stateful test, with producers fuzzed first in
Schemathesis's dependency order, :func:`operations`). The other fields keep their generated
values, and negative cases are sent as generated (some leave out the API token): invalid
input stays in the mix.

:func:`outcome` sorts each answer: ``2xx``; ``handler_4xx``, a refusal by a route's own
logic (the ``{"detail", "error"}`` body of ``samplehub.api.errors``); ``validation_4xx``,
refused before any route code ran (FastAPI's request validation, the token check, an
unparsable body); ``5xx``; ``no_response``.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from samplehub.repository import Repository

POSITIVE_SHARE = 0.75
"""Share of each operation's cases generated positive (the rest negative)."""
REAL_SHARE = 0.75
"""Weight of a real value for a positive case's field naming a repository thing (Hypothesis
draws are not uniform: the share comes out near it, not at it)."""
OUTCOMES = ("2xx", "handler_4xx", "validation_4xx", "5xx", "no_response")

DROP = object()
"""A real value that removes the field: an option this repository cannot serve, or the other
half of a pair (:class:`Fields`)."""
KEEP = object()
"""No real value drawn: the field keeps its generated value."""


class Fields(dict[str, Any]):
    """Body fields set together: an upload or a sample id, never both; chips with chip mode."""


def build_fuzz_repository(resource: Any, data: Path, images: Path) -> None:
    """The small real repository (``build_real_repository``) plus the ``chips`` labelling view.

    Args:
        resource: the :class:`~assets.resources.SampleHubResource` (``REAL_OVERRIDES``).
        data: the real data root (``../shared/data``).
        images: where the picked images and the chips are copied.
    """
    from asset_jobs import build_real_repository
    from labelling_fixture import VIEW, build_view, copy_subset

    from samplehub.labelling.view import write_labelling_view
    from samplehub.sources import SourceSpec

    build_real_repository(resource, data, images)
    repo = resource.repository()
    repo.ingest(SourceSpec(name=VIEW, uri=str(copy_subset(data, images / VIEW))))
    chips, segments, masks = build_view(repo)
    write_labelling_view(repo.config.home_path, VIEW, chips[["sample_id", "x", "y"]], segments,
                         masks)


def load_schema(openapi: dict[str, Any]) -> Any:
    """The Schemathesis schema of a served ``/openapi.json`` document.

    FastAPI writes an optional upload as ``anyOf: [binary string, null]``; Schemathesis sends
    a multipart field as a file part only when its own schema says binary, and otherwise as a
    plain field that the route refuses before reading it. The copy loaded here states the
    binary type on such fields, so generated and real uploads reach the image decoder.
    """
    import schemathesis

    document = copy.deepcopy(openapi)
    for form in document.get("components", {}).get("schemas", {}).values():
        for prop in form.get("properties", {}).values():
            binary = [s for s in prop.get("anyOf", []) if s.get("contentMediaType")]
            if binary and all(s == binary[0] or s == {"type": "null"} for s in prop["anyOf"]):
                prop.update(binary[0])
                del prop["anyOf"]
    return schemathesis.openapi.from_dict(document)


def operations(schema: Any) -> list[Any]:
    """Every operation, producers before consumers (Schemathesis's dependency layers)."""
    found = [result.ok() for result in schema.get_all_operations()]
    return [operation for layer in schema.get_operation_layers(found) for operation in layer]


@dataclass
class RealValues:
    """Values that exist in the fuzzed repository, and ids its answers returned.

    Attributes:
        sample_ids: catalog sample ids.
        labels: label ids and names of the latest label graph.
        datasets: catalog dataset names.
        bands: band names of the samples (``red``, ``green``, ``blue``).
        views: labelling view names.
        chips: chip sample ids (strings) of the views.
        segments: (chip, segment) pairs of the views.
        images: PNG bytes of a few samples, for query by upload.
        spec_ids: ``spec_id`` values of answered queries and builds.
        build_ids: ``build_id`` values of answered builds.
    """

    sample_ids: list[int]
    labels: list[str]
    datasets: list[str]
    bands: list[str]
    views: list[str]
    chips: list[str]
    segments: list[tuple[str, int]]
    images: list[bytes]
    spec_ids: list[str] = field(default_factory=list)
    build_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, repo: Repository) -> RealValues:
        """Read the values of ``repo`` (catalog, label graph, labelling views)."""
        from samplehub.api.routes.samples import png
        from samplehub.labelling.view import LabellingView

        samples = repo.catalog.samples(columns=["sample_id", "dataset", "bands"])
        graph = repo.labels.load()
        home = repo.config.home_path
        views = [LabellingView.open(home, name) for name in LabellingView.names(home)]
        sample_ids = sorted(int(i) for i in samples["sample_id"])
        return cls(
            sample_ids=sample_ids,
            labels=sorted({name for label_id in graph.labels(None, None)
                           for name in (label_id, graph.label(label_id)["name"])}),
            datasets=sorted(set(samples["dataset"])),
            bands=sorted({str(b) for bands in samples["bands"] for b in bands}),
            views=[v.dataset for v in views],
            chips=sorted({c for v in views for c in v.chips["sample_id"]}),
            segments=sorted({(s, int(g)) for v in views
                             for s, g in zip(v.segments["sample_id"], v.segments["segment"],
                                             strict=True)}),
            images=[png(repo.image(i)[1]) for i in sample_ids[:: max(len(sample_ids) // 3, 1)]],
        )

    def harvest(self, response: Any) -> None:
        """Keep the ``spec_id`` and ``build_id`` of a 2xx JSON answer for later cases."""
        if response.status_code // 100 != 2 or "json" not in content_type(response):
            return
        body = response.json()
        if not isinstance(body, dict):
            return
        for key, pool in (("spec_id", self.spec_ids), ("build_id", self.build_ids)):
            value = body.get(key)
            if isinstance(value, str) and value not in pool:
                pool.append(value)

    # --- real values by where a field is -------------------------------------------------

    def path_parameters(self, operation: Any) -> dict[str, st.SearchStrategy[Any] | None]:
        """Real path parameters (a labelling route's ``sample_id`` is a chip of the view)."""
        chip_route = operation.path.startswith("/labelling/")
        return {
            "sample_id": _pick(self.chips if chip_route else self.sample_ids),
            "dataset": _pick(self.views),
            "build_id": _pick(self.build_ids),
            "label": _pick(self.labels),
        }

    def query(self) -> dict[str, st.SearchStrategy[Any] | None]:
        """Real query parameters."""
        return {
            "spec_id": _pick(self.spec_ids),
            "dataset": _pick(self.datasets),
            "origin": st.sampled_from(["base", "unified", "dataset"]),
            "chips": _joined(self.chips),
            "segments": _joined(sorted({str(g) for _, g in self.segments})),
            "bands": None if len(self.bands) < 3 else st.permutations(self.bands).map(
                lambda b: ",".join(b[:3])),
            "stretch": st.tuples(st.integers(0, 49), st.integers(51, 100)).map(
                lambda p: f"{p[0]},{p[1]}"),
        }

    def body(self) -> dict[str, st.SearchStrategy[Any] | None]:
        """Real top-level body fields (JSON bodies and multipart forms).

        ``label`` (a labelling action's) takes the graph labels that are valid class names.
        """
        from samplehub.labelling.view import LABEL

        chips = _some(self.chips, 5)
        segments = None if not self.segments else st.lists(
            st.sampled_from(self.segments).map(lambda s: {"id": s[0], "segment": s[1]}),
            min_size=1, max_size=5)
        return {
            "labels": _some(self.labels, 3),
            "label": _pick([label for label in self.labels if LABEL.match(label)]),
            "constraints": self.constraints(),
            "spec_id": _pick(self.spec_ids),
            "build_id": _pick(self.build_ids),
            "decisions": self.decisions(),
            "name": st.from_regex(r"\Afuzz-[a-z0-9]{1,8}\Z"),
            "split": self.split(),
            "quotas": st.one_of(st.just(DROP), st.integers(1, 50)),
            # a brushed selection: chips in chip mode, segments in segment mode
            "chips": None if chips is None else chips.map(
                lambda c: Fields(mode="chip", chips=c, segments=DROP)),
            "segments": None if segments is None else segments.map(
                lambda s: Fields(mode="segment", segments=s, chips=DROP)),
            # query by image: a catalogued sample or an upload, one of them
            "sample_id": None if not self.sample_ids else st.sampled_from(self.sample_ids).map(
                lambda i: Fields(sample_id=i, file=DROP)),
            # indices keep the strategy's repr short (Hypothesis prints it on failures)
            "file": None if not self.images else st.sampled_from(range(len(self.images))).map(
                lambda i: Fields(file=self.images[i], sample_id=DROP)),
            # land-cover re-ranking and constraints need a trained ESFormer, which this
            # repository has not (each answers 409); a real request leaves them out
            "rerank_k": st.just(DROP),
            "landcover": st.just(DROP),
        }

    def constraints(self) -> st.SearchStrategy[dict[str, Any]]:
        """Step-1 constraints that pass validation: real datasets, valid bbox and times."""
        lon = st.floats(-180, 180)
        lat = st.floats(-90, 90)
        bbox = st.tuples(lon, lat, lon, lat).filter(lambda b: b[0] < b[2] and b[1] < b[3])
        day = st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 1, 1)).map(str)
        optional = {"bbox": bbox.map(list),
                    "time": st.lists(day, min_size=2, max_size=2).map(sorted)}
        datasets = _some(self.datasets, 2)
        if datasets is not None:
            optional["datasets"] = datasets
        return st.fixed_dictionaries({}, optional=optional)

    @staticmethod
    def split() -> st.SearchStrategy[dict[str, Any]]:
        """Split settings that pass validation (ratios summing to 1, a seed numpy takes)."""
        from samplehub.hilbert import HILBERT_ORDER

        ratios = st.sampled_from([{"train": 1.0}, {"train": 0.8, "val": 0.2},
                                  {"train": 0.8, "val": 0.1, "test": 0.1}])
        return st.fixed_dictionaries(
            {"ratios": ratios, "seed": st.integers(0, 2**32)},
            optional={"hilbert_level": st.one_of(st.none(), st.integers(0, HILBERT_ORDER))})

    def decisions(self) -> st.SearchStrategy[list[dict[str, Any]]] | None:
        """Review decisions on real samples."""
        if not self.sample_ids:
            return None
        decision = st.fixed_dictionaries(
            {"sample_id": st.sampled_from(self.sample_ids),
             "decision": st.sampled_from(["accept", "reject"])},
            optional={"label": st.sampled_from(self.labels or ["river"])})
        return st.lists(decision, min_size=1, max_size=4)

    # --- cases ---------------------------------------------------------------------------

    def strategy(self, operation: Any, mode: str) -> st.SearchStrategy[Any]:
        """Cases of ``operation``: ``positive`` ones with real values mixed in, ``negative``
        ones as generated."""
        from schemathesis import GenerationMode

        generated = operation.as_strategy(generation_mode=GenerationMode(mode))
        if mode == "negative":
            return generated
        parts = {"path_parameters": self.path_parameters(operation), "query": self.query(),
                 "body": self.body()}
        real = st.fixed_dictionaries({
            part: st.fixed_dictionaries({name: _sometimes(s) for name, s in fields.items()
                                         if s is not None})
            for part, fields in parts.items()})
        return st.tuples(generated, real).map(_apply)


def _sometimes(real: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A real value, weighted ``REAL_SHARE``; else ``KEEP``."""
    chances = [True] * round(4 * REAL_SHARE) + [False] * round(4 * (1 - REAL_SHARE))
    return st.sampled_from(chances).flatmap(lambda use: real if use else st.just(KEEP))


def _apply(drawn: tuple[Any, dict[str, dict[str, Any]]]) -> Any:
    """The generated case with the drawn real values in place of its generated ones."""
    case, real = drawn
    for part in ("path_parameters", "query"):
        present = getattr(case, part) or {}
        for name, value in real[part].items():
            if name in present and value is not KEEP:
                present[name] = value
    if not isinstance(case.body, dict):
        return case
    properties = {name for body in case.operation.body if body.media_type == case.media_type
                  for name in body.resolved_schema.get("properties", {})}
    for name, value in real["body"].items():
        if name not in properties or value is KEEP:
            continue
        for key, item in (value.items() if isinstance(value, Fields) else [(name, value)]):
            if item is DROP:
                case.body.pop(key, None)
            elif key in properties:
                case.body[key] = item
    return case


def _pick(values: list[Any]) -> st.SearchStrategy[Any] | None:
    return st.sampled_from(values) if values else None


def _some(values: list[Any], most: int) -> st.SearchStrategy[list[Any]] | None:
    if not values:
        return None
    return st.lists(st.sampled_from(values), min_size=1, max_size=most, unique=True)


def _joined(values: list[str]) -> st.SearchStrategy[str] | None:
    found = _some(values, 3)
    return None if found is None else found.map(",".join)


# --- sending and counting ------------------------------------------------------------------


def content_type(response: Any) -> str:
    """The content type of a Schemathesis response (its headers hold lists of values)."""
    values = response.headers.get("content-type") or [""]
    return str(values[0] if isinstance(values, list) else values)


def excerpt(response: Any, size: int = 200) -> str:
    """The status and the start of a text body (a picture's length)."""
    if "json" in content_type(response) or "text" in content_type(response):
        return f"{response.status_code} {response.content[:size].decode(errors='replace')}"
    return f"{response.status_code} ({len(response.content)} bytes)"


def outcome(status: int | None, body: bytes | None) -> str:
    """Where an answer came from (module docstring)."""
    if status is None:
        return "no_response"
    if status >= 500:
        return "5xx"
    if status < 400:
        return "2xx"
    try:
        answer = json.loads(body or b"")
    except ValueError:
        return "validation_4xx"
    return "handler_4xx" if isinstance(answer, dict) and "error" in answer else "validation_4xx"


@dataclass
class Tally:
    """Answers per operation: by status and by outcome, and the 5xx or unanswered ones.

    Attributes:
        statuses: ``"POST /query"`` -> status (or ``no_response``) -> count.
        outcomes: operation -> outcome -> count.
        modes: ``positive`` or ``negative`` -> outcome -> count.
        broken: each 5xx or unanswered request: operation, path, answer, curl command.
    """

    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    modes: dict[str, Counter[str]] = field(default_factory=dict)
    broken: list[dict[str, str]] = field(default_factory=list)

    def add(self, case: Any, mode: str, response: Any | None, error: str = "") -> None:
        """Count one answer to a ``mode`` case; ``response`` None: no answer, ``error`` why."""
        label = f"{case.operation.method.upper()} {case.operation.path}"
        status = None if response is None else response.status_code
        kind = outcome(status, None if response is None else response.content)
        self.statuses.setdefault(label, Counter())[str(status or "no_response")] += 1
        self.outcomes.setdefault(label, Counter())[kind] += 1
        self.modes.setdefault(mode, Counter())[kind] += 1
        if kind in ("5xx", "no_response"):
            self.broken.append({"operation": label, "path": case.formatted_path,
                                "answer": error if response is None else excerpt(response),
                                "curl": case.as_curl_command()[:400]})

    @property
    def cases(self) -> int:
        """Answers counted."""
        return sum(sum(c.values()) for c in self.outcomes.values())

    def total(self, kind: str) -> int:
        """Answers of one outcome over all operations."""
        return sum(c[kind] for c in self.outcomes.values())

    def summary(self) -> dict[str, Any]:
        """Outcome totals, the share that reached a route's logic, and 2xx per operation."""
        reached = self.total("2xx") + self.total("handler_4xx")
        return {
            "by_outcome": {kind: self.total(kind) for kind in OUTCOMES},
            "reached_handler": reached,
            "reached_handler_share": round(reached / max(self.cases, 1), 3),
            "by_mode": {mode: {kind: c[kind] for kind in OUTCOMES if c[kind]}
                        for mode, c in sorted(self.modes.items())},
            "operations_with_2xx": sum(c["2xx"] > 0 for c in self.outcomes.values()),
            "operations_without_2xx": sorted(k for k, c in self.outcomes.items() if not c["2xx"]),
            "outcomes_by_operation": {k: {kind: c[kind] for kind in OUTCOMES if c[kind]}
                                      for k, c in sorted(self.outcomes.items())},
        }


def fuzz_operation(operation: Any, values: RealValues, tally: Tally, examples: int,
                   round_seed: int, **call: Any) -> None:
    """Send about ``examples`` cases of ``operation``, ``POSITIVE_SHARE`` of them positive.

    Args:
        operation: a Schemathesis API operation.
        values: the real values; ids of 2xx answers are harvested into it.
        tally: where each answer is counted.
        examples: Hypothesis ``max_examples`` of both modes together (an operation without
            inputs has no negative cases and gets them all positive).
        round_seed: the Hypothesis seed.
        **call: keyword arguments of ``case.call`` (``base_url``, ``headers``, ``app``, ...).
    """
    negatable = bool(list(operation.iter_parameters()) or list(operation.body))
    positive = round(examples * POSITIVE_SHARE) if negatable else examples
    for mode, count in (("positive", positive), ("negative", examples - positive)):
        if count:
            _fuzz_mode(operation, mode, count, values, tally, round_seed, call)


def _fuzz_mode(operation: Any, mode: str, count: int, values: RealValues, tally: Tally,
               round_seed: int, call: dict[str, Any]) -> None:
    """Send up to ``count`` ``mode`` cases of ``operation`` (see :func:`fuzz_operation`)."""

    # no shrinking: nothing raises, every answer is counted as it came
    @given(case=values.strategy(operation, mode))
    @seed(round_seed)
    @settings(max_examples=count, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def send(case: Any) -> None:
        try:
            response = case.call(**call)
        except Exception as exc:  # no answer at all: the server broke too
            tally.add(case, mode, None, f"{type(exc).__name__}: {exc}"[:300])
            return
        tally.add(case, mode, response)
        values.harvest(response)

    send()
