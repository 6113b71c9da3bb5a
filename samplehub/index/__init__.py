"""Feature indexes: IVF-PQ with exact re-ranking, and the spatial pre-filter.

Main paper, sections 3.4 and 3.4.2 (``../shared/papers/sample-repository-label-semantics-
visual-retrieval.txt``).
"""

from samplehub.index.ivfpq import (
    IvfpqIndex,
    IvfpqParams,
    add_to_index,
    build_ivfpq_index,
    exact_search,
    load_index,
    measure_recall,
    needs_retrain,
    recall_at_k,
    retrain_index,
    save_index,
    search,
    suggest_nlist,
)
from samplehub.index.spatial import (
    HilbertIndex,
    bbox_filter,
    hilbert_candidates,
    polygon_filter,
)

__all__ = [
    "HilbertIndex",
    "IvfpqIndex",
    "IvfpqParams",
    "add_to_index",
    "bbox_filter",
    "build_ivfpq_index",
    "exact_search",
    "hilbert_candidates",
    "load_index",
    "measure_recall",
    "needs_retrain",
    "polygon_filter",
    "recall_at_k",
    "retrain_index",
    "save_index",
    "search",
    "suggest_nlist",
]
