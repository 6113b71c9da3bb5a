"""Hash-code search for the query: the champion hash model and its Hamming index (issue 5).

``index="hash"`` replaces the IVF-PQ search of step 3 (prototype matching) and of
query-by-image: query vectors (label prototypes, an image's feature) are encoded by the
same champion hash model that coded the repository (:mod:`samplehub.hash_models`); the
Hamming index (:mod:`samplehub.index.hamming`) returns the top M codes among the allowed
samples and DMCH Eq. 7 re-ranks them by the pre-quantization values (coarse-to-fine
ranking, DMCH Sec. 3.5, ``../shared/papers/dmch-deep-metric-category-hashing.txt``).

Scores are ``1 - D / K`` with D the Eq. 7 distance (differing bits plus a tie-breaking
term below 1) and K the code length, so 1 is an identical code and the query's
``similarity_threshold`` bounds the fraction of differing bits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.hashing.serving import HammingIndex, unpack_codes
from samplehub.config import SampleHubConfig
from samplehub.errors import IndexNotTrainedError
from samplehub.hash_models import HashModel, load_hash_model
from samplehub.index.hamming import META_FILE, hash_index_path, load_hash_index
from samplehub.retrieval.context import QueryContext
from samplehub.retrieval.planner import SearchPlan

EXTRA_KEY = "hash"
_LOCK = threading.Lock()


@dataclass
class HashedVectors:
    """The champion hash model, its Hamming index and the maps to catalog rows.

    Attributes:
        model: the hash model that coded the index.
        index: the Hamming index (ids are sample ids, ascending).
        row_position: (n,) index position of each catalog row, -1 where not coded.
        position_row: (ntotal,) catalog row of each index position, -1 where the sample
            left the catalog.
        top_m: M of the coarse stage (``hashing.top_m``).
    """

    model: HashModel
    index: HammingIndex
    row_position: np.ndarray
    position_row: np.ndarray
    top_m: int

    @classmethod
    def of(
        cls, model: HashModel, index: HammingIndex, sample_ids: np.ndarray, top_m: int
    ) -> HashedVectors:
        """Wrap ``index`` for a snapshot whose rows hold ``sample_ids``."""
        ids = index.ids
        position_row = np.full(len(ids), -1, dtype=np.int64)
        slot = np.clip(np.searchsorted(ids, sample_ids), 0, max(len(ids) - 1, 0))
        found = ids[slot] == sample_ids if len(ids) else np.zeros(len(sample_ids), bool)
        row_position = np.where(found, slot, -1).astype(np.int64)
        position_row[slot[found]] = np.flatnonzero(found)
        return cls(model, index, row_position, position_row, top_m)

    def describe(self) -> dict[str, Any]:
        """The index facts a plan reports (model, kind, size, memory per sample)."""
        return {
            "model": self.model.model_version,
            "kind": self.index.kind,
            "ntotal": len(self.index),
            "bits": self.index.n_bits,
            "bytes_per_sample": self.index.bytes_per_sample,
        }

    def positions(self, allowed: np.ndarray) -> np.ndarray:
        """Index positions of the allowed catalog rows (a boolean mask (n,))."""
        positions = self.row_position[allowed]
        return positions[positions >= 0]

    def stored(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """The indexed code (1, K) and pre-quantization values (1, K) at ``position``."""
        if self.index.values is None:
            raise ValueError("the Hamming index keeps no pre-quantization values")
        code = unpack_codes(self.index.packed[position : position + 1], self.index.n_bits)
        return code, self.index.values[position : position + 1].astype(np.float32)


def attach_hashed(config: SampleHubConfig, ctx: QueryContext) -> HashedVectors:
    """The hashed vectors of ``ctx``'s snapshot, loaded once per champion and index file.

    Raises:
        IndexNotTrainedError: no champion hash model, or no Hamming index for it.
    """
    model = load_hash_model(config)
    meta = hash_index_path(config, model.model_version) / META_FILE
    stamp = (model.model_version, meta.stat().st_mtime_ns if meta.is_file() else None)
    with _LOCK:
        cached = ctx.extras.get(EXTRA_KEY)
        if isinstance(cached, tuple) and cached[0] == stamp:
            return cached[1]  # type: ignore[no-any-return]
        index = load_hash_index(config, model.model_version)
        hashed = HashedVectors.of(model, index, ctx.snapshot.sample_id, config.hashing.top_m)
        ctx.extras[EXTRA_KEY] = (stamp, hashed)
        return hashed


def hashed_of(ctx: QueryContext) -> HashedVectors:
    """The hashed vectors :func:`attach_hashed` put on ``ctx``.

    Raises:
        IndexNotTrainedError: none attached (run the query through ``run_query``).
    """
    cached = ctx.extras.get(EXTRA_KEY)
    if not isinstance(cached, tuple):
        raise IndexNotTrainedError(
            "index='hash' needs the Hamming index loaded into the query context; use "
            "run_query (it attaches it) or samplehub.retrieval.hashed.attach_hashed"
        )
    return cached[1]  # type: ignore[no-any-return]


def search_hashed(
    hashed: HashedVectors,
    plan: SearchPlan,
    codes_q: np.ndarray,
    values_q: np.ndarray,
    k: int,
    top_m: int,
    positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Coarse-to-fine search (DMCH Sec. 3.5) restricted to ``positions``.

    Args:
        hashed: the index.
        plan: from :func:`samplehub.retrieval.planner.plan_hash_search`.
        codes_q: query codes (nq, K).
        values_q: query pre-quantization values (nq, K).
        k: results per query.
        top_m: Hamming candidates re-ranked by Eq. 7 (at least k).
        positions: allowed index positions; ignored by an unfiltered plan.

    Returns:
        Scores ``1 - D / K`` (nq, k') and catalog rows (nq, k'), -1 where fewer results
        exist, with ``k' = min(k, len(positions))``.
    """
    m = min(max(top_m, k), len(positions))
    if m == 0:
        return np.zeros((len(codes_q), 0), np.float32), np.zeros((len(codes_q), 0), np.int64)
    allowed = positions if plan.filtered else None
    D, ids = hashed.index.search_rerank(codes_q, values_q, min(k, m), m, allowed=allowed)
    found = ids >= 0
    pos = np.searchsorted(hashed.index.ids, np.where(found, ids, 0))
    rows = np.where(found, hashed.position_row[np.minimum(pos, len(hashed.index) - 1)], -1)
    scores = np.where(found, 1.0 - D / hashed.index.n_bits, -np.inf).astype(np.float32)
    return scores, rows
