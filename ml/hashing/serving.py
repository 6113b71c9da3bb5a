"""Serving hash codes: packed bits in a FAISS binary index plus the coarse-to-fine re-rank.

* Codes in {0, 1} are packed 8 bits per byte with ``np.packbits`` (K / 8 bytes a sample).
* ``faiss.IndexBinaryFlat`` (exact) below ``ivf_min_size`` samples, ``faiss.IndexBinaryIVF``
  (Hamming k-means coarse quantiser, ``nprobe`` lists scanned) above it.
* Optional pre-quantization values (DMCH's sigmoid outputs, float16) turn the Hamming top-M
  into the coarse-to-fine ranking of DMCH Eq. 7
  (``../shared/papers/dmch-deep-metric-category-hashing.txt``, Sec. 3.5).

Search results use faiss conventions: ``D, I`` of shape (nq, k); ``I`` holds the caller's ids
(``-1`` where fewer than k results were found).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.hashing.dmch import fine_distance


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Pack {0, 1} codes (n, K) into bytes (n, K / 8), most significant bit first.

    Raises:
        ValueError: if ``codes`` is not 2-D, holds values other than 0/1, or K % 8 != 0.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] % 8:
        raise ValueError(f"codes must have shape (n, K) with K a multiple of 8; got {codes.shape}")
    if codes.size and not np.isin(codes, (0, 1)).all():
        raise ValueError("codes must hold only 0 and 1")
    return np.packbits(codes.astype(np.uint8), axis=1)


def unpack_codes(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: bytes (n, K / 8) -> {0, 1} codes (n, K)."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, count=n_bits)


class HammingIndex:
    """FAISS binary index over packed codes with optional coarse-to-fine re-ranking.

    Args:
        n_bits: code length K, a multiple of 8.
        ivf_min_size: database size from which an IVF index is built instead of a flat one.
        nlist: IVF lists; default ``4 sqrt(n)``.
        nprobe: IVF lists scanned per query.
    """

    def __init__(
        self, n_bits: int, ivf_min_size: int = 200_000, nlist: int | None = None, nprobe: int = 16
    ) -> None:
        if n_bits < 8 or n_bits % 8:
            raise ValueError(f"n_bits must be a positive multiple of 8; got {n_bits}")
        self.n_bits = n_bits
        self.ivf_min_size = ivf_min_size
        self.nlist = nlist
        self.nprobe = nprobe
        self.index: Any = None
        self.ids = np.zeros(0, dtype=np.int64)
        self.packed = np.zeros((0, n_bits // 8), dtype=np.uint8)
        self.values: np.ndarray | None = None

    @property
    def kind(self) -> str:
        """``"flat"`` or ``"ivf"``, once built."""
        if self.index is None:
            raise RuntimeError("HammingIndex is empty; call build(codes) first")
        return "ivf" if "IVF" in type(self.index).__name__ else "flat"

    @property
    def bytes_per_sample(self) -> int:
        """Memory a sample takes in this index, in bytes.

        The packed code inside faiss (K / 8; IVF lists add an 8-byte id), the int64 id map
        (8) and, when re-ranking values are kept, a code copy (K / 8) and K float16 values.
        """
        total = self.n_bits // 8 + 8 + (8 if self.kind == "ivf" else 0)
        if self.values is not None:
            total += self.n_bits // 8 + 2 * self.n_bits
        return total

    def __len__(self) -> int:
        """Number of indexed samples."""
        return len(self.ids)

    def build(
        self, codes: np.ndarray, ids: np.ndarray | None = None, values: np.ndarray | None = None
    ) -> HammingIndex:
        """Index {0, 1} codes, replacing any previous content.

        Args:
            codes: database codes, shape (nb, K).
            ids: int64 id per row (e.g. ``sample_id``); default ``arange(nb)``.
            values: pre-quantization values for the re-rank, shape (nb, K), stored float16.

        Returns:
            self.
        """
        import faiss

        packed = pack_codes(codes)
        self._check_width(packed, "codes")
        self.ids = np.arange(len(packed), dtype=np.int64) if ids is None else np.asarray(ids)
        if len(self.ids) != len(packed):
            raise ValueError(f"ids has {len(self.ids)} rows but codes has {len(packed)}")
        self.values = None if values is None else self._checked_values(values, len(packed))
        self.packed = packed if values is not None else np.zeros((0, packed.shape[1]), np.uint8)
        if len(packed) >= self.ivf_min_size:
            self.index = self._train_ivf(packed)
        else:
            self.index = faiss.IndexBinaryFlat(self.n_bits)
        self.index.add(packed)
        return self

    def _train_ivf(self, packed: np.ndarray) -> Any:
        """A trained ``IndexBinaryIVF`` with ``nlist`` Hamming k-means lists."""
        import faiss

        nlist = self.nlist or max(1, int(4 * np.sqrt(len(packed))))
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(self.n_bits), self.n_bits, nlist)
        rng = np.random.default_rng(0)
        sample = packed[rng.choice(len(packed), min(len(packed), 64 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = self.nprobe
        return index

    def _checked_values(self, values: np.ndarray, n: int) -> np.ndarray:
        """Pre-quantization values as float16 (n, K) or raise naming ``values``."""
        values = np.asarray(values)
        if values.shape != (n, self.n_bits):
            raise ValueError(f"values must have shape ({n}, {self.n_bits}); got {values.shape}")
        return values.astype(np.float16)

    def _check_width(self, packed: np.ndarray, name: str) -> None:
        """Raise when packed codes do not have K / 8 bytes."""
        if packed.shape[1] != self.n_bits // 8:
            raise ValueError(f"{name} must have {self.n_bits} bits; got {packed.shape[1] * 8} bits")

    def search(self, codes_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Hamming k-nearest neighbours.

        Args:
            codes_q: query codes, shape (nq, K).
            k: results per query.

        Returns:
            (D, I): int32 Hamming distances and ids, shape (nq, k).
        """
        if self.index is None:
            raise RuntimeError("HammingIndex is empty; call build(codes) first")
        packed = pack_codes(codes_q)
        self._check_width(packed, "codes_q")
        D, pos = self.index.search(packed, k)
        return D, np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)

    def search_rerank(
        self,
        codes_q: np.ndarray,
        values_q: np.ndarray,
        k: int,
        top_m: int,
        fine: str = "eq7",
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coarse-to-fine search of DMCH Sec. 3.5: Hamming top-M, then re-rank, keep k.

        Args:
            codes_q: query codes, shape (nq, K).
            values_q: query pre-quantization values, shape (nq, K).
            k: results per query, at most ``top_m``.
            top_m: M, candidates from the Hamming stage.
            fine: ``"eq7"`` (Eq. 7) or ``"euclidean"`` on the pre-quantization values.
            allowed: index positions (insertion order) the results may come from; None
                allows all. See :meth:`coarse_positions`.

        Returns:
            (D, I): fine distances (float32) and ids, shape (nq, k).
        """
        if self.values is None:
            raise RuntimeError("search_rerank needs values; build the index with values=")
        if not 1 <= k <= top_m:
            raise ValueError(f"k must be in [1, top_m={top_m}]; got {k}")
        packed = pack_codes(codes_q)
        self._check_width(packed, "codes_q")
        pos = self.coarse_positions(packed, top_m, allowed)
        safe = np.maximum(pos, 0)
        cand_codes = unpack_codes(self.packed[safe.ravel()], self.n_bits).reshape(*pos.shape, -1)
        cand_values = self.values[safe].astype(np.float32)
        D = fine_distance(
            np.asarray(codes_q), np.asarray(values_q, np.float32), cand_codes, cand_values, fine
        )
        D = np.where(pos >= 0, D, np.inf)
        order = np.argsort(D, axis=1, kind="stable")[:, :k]
        pos = np.take_along_axis(pos, order, 1)
        ids = np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)
        return np.take_along_axis(D, order, 1).astype(np.float32), ids

    def coarse_positions(
        self, packed_q: np.ndarray, top_m: int, allowed: np.ndarray | None
    ) -> np.ndarray:
        """Positions (nq, top_m) of the Hamming top-M, -1 where fewer exist.

        ``allowed`` restricts the candidates: a flat index scans with a bitmap selector;
        ``IndexBinaryIVF`` takes no selector in faiss, so its allowed codes are scanned
        exactly in a temporary flat index (K / 8 bytes a candidate).
        """
        import faiss

        if allowed is None:
            return self.index.search(packed_q, top_m)[1]
        allowed = np.asarray(allowed, dtype=np.int64)
        if self.kind == "flat":
            mask = np.zeros(len(self.ids), dtype=bool)
            mask[allowed] = True
            bitmap = np.packbits(mask, bitorder="little")  # alive until the search returns
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            return self.index.search(packed_q, top_m, params=params)[1]
        subset = faiss.IndexBinaryFlat(self.n_bits)
        subset.add(self.packed[allowed])
        _, local = subset.search(packed_q, top_m)
        return np.where(local >= 0, allowed[np.maximum(local, 0)], -1)
