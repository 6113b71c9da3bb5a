"""Land cover in the query: the constraint parser, the mask, and HIR stage 2 as a VectorSearch
(over a brute-force stage 1, checked against Eq. 1 by hand)."""

from collections.abc import Hashable

import numpy as np
import pytest

from samplehub.config import RetrievalConfig
from samplehub.errors import QueryError
from samplehub.retrieval.landcover import (
    LandcoverRequest,
    LandcoverSearch,
    LandcoverTable,
    landcover_mask,
    parse_landcover,
    parse_weights,
    rerank_stage,
)
from samplehub.retrieval.planner import AllowedPositions, SearchPlan
from samplehub.retrieval.search import PositionMap

CLASSES = ["buildings", "trees", "water"]


class BruteForce:
    """Stage 1 double: exact inner-product search over xb, catalog row = position."""

    def __init__(self, xb: np.ndarray) -> None:
        self.xb = xb
        self.positions = PositionMap.of(np.arange(len(xb)), np.arange(len(xb)))
        self.asked_k: list[int] = []

    def allowed(self, rows: np.ndarray | None, excluded: np.ndarray,
                key: Hashable | None = None) -> AllowedPositions:
        return self.positions.allowed(rows, excluded, key)

    def plan(self, choice: str, n_candidates: int, k: int, config: RetrievalConfig) -> SearchPlan:
        self.asked_k.append(k)
        return SearchPlan("exact", n_candidates, False, "test")

    def search(self, plan: SearchPlan, xq: np.ndarray, k: int,
               allowed: AllowedPositions | None) -> tuple[np.ndarray, np.ndarray]:
        s = xq @ self.xb.T
        if allowed is not None:
            ok = np.zeros(len(self.xb), bool)
            ok[allowed.positions(len(self.xb))] = True
            s[:, ~ok] = -np.inf
        I = np.argsort(-s, axis=1, kind="stable")[:, :k]
        D = np.take_along_axis(s, I, 1)
        return D, np.where(np.isfinite(D), I, -1)

    def position_of(self, row: int, sample_id: int) -> int:
        return row

    def search_stored(self, plan: SearchPlan, position: int, k: int,
                      allowed: AllowedPositions | None) -> tuple[np.ndarray, np.ndarray]:
        return self.search(plan, self.xb[position : position + 1], k, allowed)

    def describe(self) -> dict[str, object]:
        return {"stage1": "brute force"}


@pytest.fixture
def table() -> LandcoverTable:
    P = np.array([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [0.9, 0.1, 0.0],
                  [0.2, 0.2, 0.6]], np.float32)
    ids = np.array([10, 11, 12, 13, 14])
    sample_id = np.array([10, 11, 12, 13, 14, 15])  # 15 has no statistics
    return LandcoverTable.of("esformer-v1", CLASSES, ids, P, sample_id)


def test_parse_constraint_terms() -> None:
    terms = parse_landcover("water>=0.2, building<=0.1", CLASSES)
    assert [(t.name, t.op, t.value) for t in terms] == [("water", ">=", 0.2),
                                                        ("buildings", "<=", 0.1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "landcover: empty constraint"),
        ("water>>0.2", "landcover: cannot read term 'water>>0.2'"),
        ("roads>=0.2", "landcover: unknown land-cover class 'roads'; classes: buildings"),
        ("water>=1.5", "landcover: term 'water>=1.5': the share 1.5 is outside"),
    ],
)
def test_constraint_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_landcover(text, CLASSES)


def test_parse_weights() -> None:
    assert parse_weights("building=4,water=0.5", CLASSES) == {"buildings": 4.0, "water": 0.5}
    with pytest.raises(QueryError, match="landcover_weights: cannot read 'water=-1'"):
        parse_weights("water=-1", CLASSES)
    with pytest.raises(QueryError, match="landcover_weights: unknown land-cover class 'x'"):
        parse_weights("x=2", CLASSES)


def test_mask_keeps_rows_meeting_every_term(table: LandcoverTable) -> None:
    mask = landcover_mask(table, parse_landcover("buildings>=0.5,water<0.2", CLASSES))
    assert mask.tolist() == [True, False, False, True, False, False]  # row 5: no statistics
    assert table.hit_proportions(5) == {} and table.hit_proportions(3)["buildings"] == 0.9


def test_stage2_reranks_stage1_top_k_by_eq1(table: LandcoverTable) -> None:
    xb = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.9], [0.0, 1.0]])
    inner = BruteForce(xb)
    search = rerank_stage(inner, LandcoverRequest(k=4, weights={"buildings": 4}), table,
                          reference=np.array([0.9, 0.1, 0.0], np.float32))
    assert isinstance(search, LandcoverSearch)
    allowed = search.allowed(None, np.zeros(0, np.int64))
    plan = search.plan("exact", allowed.count, 2, RetrievalConfig())
    assert inner.asked_k == [4]  # stage 1 is asked for K, not k
    scores, rows = search.search(plan, np.array([[1.0, 0.0]]), 2, allowed)
    # stage 1 top 4: rows 0-3; Eq. 1 with w = (4, 1, 1) to (0.9, 0.1, 0): 1.5, 4.0, 2.0, 0
    assert rows.tolist() == [[3, 0]]
    assert np.allclose(scores, [[1.0, 1.0 - 1.5 / 8.0]])
    described = search.describe()
    assert described["stage1"] == "brute force"
    record = described["rerank"]
    assert record["K"] == 4 and record["weights"] == {"buildings": 4}
    assert record["stage2_ms"] >= 0 and record["candidates"] == 4


def test_stage2_of_a_stored_sample_uses_its_statistics(table: LandcoverTable) -> None:
    xb = np.eye(6)[:, :6] + 0.5
    search = rerank_stage(BruteForce(xb), LandcoverRequest(k=5), table)
    position = search.position_of(3, 13)
    allowed = search.allowed(None, np.array([3]))
    plan = search.plan("exact", allowed.count, 3, RetrievalConfig())
    _, rows = search.search_stored(plan, position, 3, allowed)
    # reference row 3 = (0.9, 0.1, 0); Manhattan: row0 0.6, row2 0.8, row1 1.6, row4 1.4
    assert rows.tolist() == [[0, 2, 4]]
    missing = rerank_stage(BruteForce(xb), LandcoverRequest(k=5), table)
    missing.position_of(5, 15)
    with pytest.raises(QueryError, match="no land-cover statistics of esformer-v1"):
        missing.search_stored(plan, 5, 3, allowed)


def test_constraint_alone_filters_stage1(table: LandcoverTable) -> None:
    xb = np.ones((6, 2))
    inner = BruteForce(xb)
    search = rerank_stage(inner, LandcoverRequest(k=None, constraint="water>=0.3"), table)
    allowed = search.allowed(None, np.zeros(0, np.int64))
    assert allowed.count == 2
    _, rows = search.search(search.plan("exact", 2, 5, RetrievalConfig()), xb[:1], 5, allowed)
    assert sorted(r for r in rows[0].tolist() if r >= 0) == [2, 4]
    assert search.describe()["rerank"]["constraint_rows"] == 2


def test_no_request_is_the_same_search(table: LandcoverTable) -> None:
    inner = BruteForce(np.ones((6, 2)))
    assert rerank_stage(inner, None, table) is inner
    with pytest.raises(QueryError, match="landcover: no land-cover statistics"):
        rerank_stage(inner, LandcoverRequest(), None)
    with pytest.raises(QueryError, match="landcover_weights"):
        rerank_stage(inner, LandcoverRequest(weights={"roads": 2}), table)
