"""Test doubles of :func:`samplehub.retrieval.query.run_query` and ``query_by_image``.

``fake_run_query``: exact hits are catalog samples carrying the query label; supplementary
hits come from a fixed table of "associated" labels with decreasing scores. It lets the
builder, the API and the review page be tested without features, indexes or a label graph.
"""

from __future__ import annotations

import numpy as np

from samplehub.errors import QueryError, UnknownLabelError
from samplehub.repository import Repository
from samplehub.retrieval.types import Hit, QueryResult, QuerySpec

ASSOCIATED = {
    "river": ("forest", ("river", "water_area", "forest")),
    "farmland": ("residential", ("farmland", "residential")),
}


def fake_run_query(repo: Repository, spec: QuerySpec) -> QueryResult:
    """Test double of ``run_query``: label match for exact, a fixed table for supplementary."""
    frame = repo.catalog.samples(columns=["sample_id", "dataset", "relpath", "labels"])
    if spec.datasets:
        frame = frame[frame["dataset"].isin(spec.datasets)]
    known = {label for labels in frame["labels"] for label in labels}
    hits: list[Hit] = []
    for label in spec.labels:
        if label not in known and label not in ASSOCIATED:
            raise UnknownLabelError(f"label {label!r} is not in the label graph")
        for row in frame.itertuples():
            if label in row.labels:
                hits.append(Hit(row.sample_id, row.dataset, row.relpath, list(row.labels),
                                "exact", 1.0, label, f"carries {label}"))
        if spec.include_supplementary and label in ASSOCIATED:
            other, path = ASSOCIATED[label]
            rows = [r for r in frame.sort_values("sample_id").itertuples() if other in r.labels]
            for rank, row in enumerate(rows[: spec.k]):
                hits.append(Hit(row.sample_id, row.dataset, row.relpath, list(row.labels),
                                "supplementary", 0.9 - 0.1 * rank, label,
                                f"looks like {label} (via {other})", list(path), rank))
    return QueryResult(spec=spec, hits=hits, plan={"search": "test double"})


def fake_query_by_image(
    repo: Repository,
    image: np.ndarray | None = None,
    sample_id: int | None = None,
    k: int = 20,
    landcover: object = None,
) -> QueryResult:
    """Test double of ``query_by_image``: the first k other samples, decreasing scores."""
    if (image is None) == (sample_id is None):
        raise QueryError("pass exactly one of image= and sample_id=")
    frame = repo.catalog.samples(columns=["sample_id", "dataset", "relpath", "labels"])
    frame = frame[frame["sample_id"] != sample_id].head(k)
    hits = [Hit(r.sample_id, r.dataset, r.relpath, list(r.labels), "similar", 1 - 0.01 * i, "",
                "visually similar") for i, r in enumerate(frame.itertuples())]
    return QueryResult(QuerySpec(labels=(), k=k), hits)
