"""Land cover in a label query (HIR stage 2 and the constraint) through the real query code
on the tiny repository of conftest.py, with a hand-made statistics table.

Statistics (buildings, trees, water): rivers are mostly water; the first 20 bridges look like
bridges over water, the other 20 like bridges in a town; forests are trees.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from query_fixture import Fixture

from samplehub.errors import QueryError
from samplehub.retrieval.context import open_context
from samplehub.retrieval.landcover import LandcoverTable
from samplehub.retrieval.query import query_context
from samplehub.retrieval.types import LandcoverRequest, QueryResult, QuerySpec

CLASSES = ["buildings", "trees", "water"]
RIVER = QuerySpec(labels=("river",), max_label_distance=2.0, similarity_threshold=0.5, k=20)


def statistics(built: Fixture) -> tuple[LandcoverTable, set[int], set[int]]:
    """The table over the snapshot's rows; ids of the water bridges and the town bridges."""
    f = built.frame
    P = np.zeros((len(f["sample_id"]), 3), np.float32)
    bridge = np.flatnonzero(f["label"] == "Bridge")
    P[np.isin(f["label"], ["River", "Rivers"])] = [0.1, 0.1, 0.8]
    P[bridge[:20]] = [0.2, 0.1, 0.7]
    P[bridge[20:]] = [0.8, 0.1, 0.1]
    P[np.isin(f["label"], ["Forest", "Highway"])] = [0.1, 0.8, 0.1]
    ctx = open_context(built.repo)
    table = LandcoverTable.of("esformer-v1", CLASSES, f["sample_id"][np.argsort(f["sample_id"])],
                              P[np.argsort(f["sample_id"])], ctx.snapshot.sample_id)
    ids = f["sample_id"]
    return table, set(ids[bridge[:20]].tolist()), set(ids[bridge[20:]].tolist())


def run(built: Fixture, spec: QuerySpec, table: LandcoverTable | None) -> QueryResult:
    ctx = open_context(built.repo)
    return query_context(ctx, spec, built.repo.config.retrieval, parallel=False,
                         landcover=table)


def test_stage2_reranks_a_label_query_towards_its_exact_matches(built: Fixture) -> None:
    table, water, town = statistics(built)
    plain = run(built, RIVER, table)
    found = {h.sample_id for h in plain.supplementary}
    assert found & town, "stage 1 alone mixes both kinds of bridge (else the test shows nothing)"

    spec = dataclasses.replace(RIVER, landcover=LandcoverRequest(k=75, weights={"water": 4}))
    result = run(built, spec, table)
    supplementary = result.supplementary
    first = [h.sample_id for h in supplementary if h.sample_id in water | town][:20]
    assert set(first) == water, "every water bridge ranks before any town bridge"
    assert all(0.0 <= h.score <= 1.0 for h in supplementary)
    record = result.plan["labels"]["river"]["rerank"]
    assert record["K"] == 75 and record["weights"] == {"water": 4}
    assert record["reference"] == "mean of 70 exact matches of 'river'"
    assert record["stage2_ms"] >= 0 and record["candidates"] > 0
    assert len(result.exact) == 70  # exact matches untouched


def test_constraint_applies_to_exact_and_supplementary_hits(built: Fixture) -> None:
    table, _, town = statistics(built)
    spec = dataclasses.replace(RIVER, labels=("bridge",),
                               landcover=LandcoverRequest(k=None, constraint="buildings>=0.5"))
    result = run(built, spec, table)
    exact = {h.sample_id for h in result.exact}
    assert exact == town  # the water bridges fail the constraint
    rows = np.flatnonzero(np.isin(open_context(built.repo).snapshot.sample_id,
                                  [h.sample_id for h in result.hits]))
    assert (table.P[rows, 0] >= 0.5).all()
    assert result.plan["filter"]["landcover"] == "buildings>=0.5"


def test_rerank_needs_statistics_of_the_labels_exact_matches(built: Fixture) -> None:
    table, _, _ = statistics(built)
    blank = LandcoverTable("esformer-v1", CLASSES, np.full_like(table.P, np.nan))
    spec = dataclasses.replace(RIVER, landcover=LandcoverRequest(k=75))
    with pytest.raises(QueryError, match="none of the 70 exact matches of 'river'"):
        run(built, spec, blank)
    with pytest.raises(QueryError, match="landcover: no land-cover statistics"):
        run(built, spec, None)
