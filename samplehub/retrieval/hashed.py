"""Hash-code search for the query: the champion hash model and its Hamming index.

``index="hash"`` replaces the IVF-PQ search of step 3 (prototype matching) and of
query-by-image: query vectors (label prototypes, an image's feature) are encoded by the
same champion hash model that coded the repository (:mod:`samplehub.models.hash_model`); the
Hamming index (:mod:`samplehub.index.hamming`) returns the top M codes among the allowed
samples and DMCH Eq. 7 re-ranks them by the pre-quantization values (coarse-to-fine
ranking, DMCH Sec. 3.5, ``../shared/papers/dmch-deep-metric-category-hashing.txt``).
:class:`HammingSearch` is this search behind the query's
:class:`~samplehub.retrieval.search.VectorSearch` interface.

Scores are ``1 - D / K`` with D the Eq. 7 distance (differing bits plus a tie-breaking
term below 1) and K the code length, so 1 is an identical code and the query's
``similarity_threshold`` bounds the fraction of differing bits.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from ml.hashing.serving import HammingIndex, unpack_codes
from samplehub.config import RetrievalConfig
from samplehub.errors import SampleNotFoundError
from samplehub.index.hamming import META_FILE, hash_index_path, load_hash_index
from samplehub.models.hash_model import HashModel, load_hash_model
from samplehub.repository import Repository
from samplehub.retrieval.planner import AllowedPositions, SearchPlan, plan_hash_search
from samplehub.retrieval.search import PositionedSearch, PositionMap
from samplehub.retrieval.types import IndexChoice


def hamming_stamp(repo: Repository) -> tuple[HashModel, Hashable]:
    """The champion hash model of ``repo`` and a value that changes with it or its index.

    The model's weights are loaded once (``Repository.models``).

    Raises:
        IndexNotTrainedError: no champion hash model.
    """
    model = load_hash_model(repo.config, models=repo.models)
    meta = hash_index_path(repo.config, model.model_version) / META_FILE
    return model, (model.model_version, meta.stat().st_mtime_ns if meta.is_file() else None)


@dataclass
class HammingSearch(PositionedSearch):
    """The champion hash model, its Hamming index and the positions of catalog rows.

    Attributes:
        model: the hash model that coded the index.
        index: the Hamming index (ids are sample ids, ascending).
        positions: catalog rows <-> index positions.
        top_m: M of the coarse stage (``hashing.top_m``).
        stamp: :func:`hamming_stamp` of what was loaded.
    """

    model: HashModel
    index: HammingIndex
    positions: PositionMap
    top_m: int
    stamp: Hashable = None

    @classmethod
    def load(
        cls, repo: Repository, model: HashModel, sample_id: np.ndarray, stamp: Hashable
    ) -> HammingSearch:
        """The saved Hamming index of ``model`` over catalog rows holding ``sample_id``.

        Raises:
            IndexNotTrainedError: no Hamming index for the model.
        """
        index = load_hash_index(repo.config, model.model_version)
        return cls(model, index, PositionMap.of(index.ids, sample_id),
                   repo.config.hashing.top_m, stamp)

    def describe(self) -> dict[str, object]:
        """The index facts a plan reports (model, kind, size, memory per sample)."""
        return {
            "hash_index": {
                "model": self.model.model_version,
                "kind": self.index.kind,
                "ntotal": len(self.index),
                "bits": self.index.n_bits,
                "bytes_per_sample": self.index.bytes_per_sample,
            }
        }

    def plan(
        self, choice: IndexChoice, n_candidates: int, k: int, config: RetrievalConfig
    ) -> SearchPlan:
        """:func:`~samplehub.retrieval.planner.plan_hash_search`.

        ``choice`` is ``hash``, or ``auto`` where the measured comparison picked this
        index (:func:`~samplehub.retrieval.planner.choose_index`). The Hamming settings
        are the index's and ``hashing.top_m``, not ``config``'s.
        """
        why = (
            "the Hamming index measured better than IVF-PQ on this catalog "
            "(plan['index_choice'])" if choice == "auto" else "hash search was asked for"
        )
        return plan_hash_search(n_candidates, len(self.index), self.index.kind,
                                self.model.model_version, k, self.top_m, self.index.nprobe,
                                why)

    def search(
        self, plan: SearchPlan, xq: np.ndarray, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode features ``xq`` (nq, d) with the hash model, then :meth:`search_codes`."""
        codes, values = self.model.encode(xq)
        return self.search_codes(plan, codes, values, k, allowed)

    def position_of(self, row: int, sample_id: int) -> int:
        """The position of catalog ``row``'s code.

        Raises:
            SampleNotFoundError: the sample has no code in the index.
        """
        position = self.positions.position(row)
        if position < 0:
            raise SampleNotFoundError(
                f"sample {sample_id} has no code in the Hamming index of "
                f"{self.model.model_version}; materialize hash_codes and hash_index"
            )
        return position

    def search_stored(
        self, plan: SearchPlan, position: int, k: int, allowed: AllowedPositions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search_codes` with the indexed sample at ``position`` as the query.

        The query is that sample's code (1, K) and pre-quantization values (1, K).
        """
        if self.index.values is None:
            raise ValueError("the Hamming index keeps no pre-quantization values")
        code = unpack_codes(self.index.packed[position : position + 1], self.index.n_bits)
        values = self.index.values[position : position + 1].astype(np.float32)
        return self.search_codes(plan, code, values, k, allowed)

    def search_codes(
        self,
        plan: SearchPlan,
        codes_q: np.ndarray,
        values_q: np.ndarray,
        k: int,
        allowed: AllowedPositions | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coarse-to-fine search (DMCH Sec. 3.5) restricted to the ``allowed`` positions.

        Args:
            plan: from :meth:`plan`.
            codes_q: query codes (nq, K).
            values_q: query pre-quantization values (nq, K).
            k: results per query.
            allowed: allowed index positions (None: all); ignored by an unfiltered plan.

        Returns:
            Scores ``1 - D / K`` (nq, k') and catalog rows (nq, k'), -1 where fewer
            results exist, with ``k' = min(k, number of allowed positions)``.
        """
        n_allowed = self.positions.ntotal if allowed is None else allowed.count
        m = min(max(self.top_m, k), n_allowed)
        if m == 0:
            return np.zeros((len(codes_q), 0), np.float32), np.zeros((len(codes_q), 0), np.int64)
        subset = None
        if plan.filtered and allowed is not None:
            subset = allowed.positions(self.positions.ntotal)
            # in catalog-row order: an IVF index scans the subset in this order, ties included
            subset = subset[np.argsort(self.positions.position_row[subset], kind="stable")]
        D, ids = self.index.search_rerank(codes_q, values_q, min(k, m), m, allowed=subset)
        found = ids >= 0
        # the index's ids ascend, so a returned id's rank among them is its position
        positions = np.where(found, np.searchsorted(self.index.ids, np.where(found, ids, 0)), -1)
        rows = self.positions.rows(positions)
        scores = np.where(found, 1.0 - D / self.index.n_bits, -np.inf).astype(np.float32)
        return scores, rows
