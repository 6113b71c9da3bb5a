"""LSH and ITQ baselines: code shape, values and retrieval quality on clustered data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from ml.hashing.baselines import ITQ, LSH
from ml.hashing.dmch import hamming_distances
from ml.metrics import mean_average_precision, relevance

if TYPE_CHECKING:
    from conftest import Clusters


@pytest.mark.parametrize("cls", [LSH, ITQ])
def test_codes_are_binary_with_right_shape(cls: type[LSH | ITQ], clusters: Clusters) -> None:
    x, _ = clusters
    codes = cls(16).fit(x).encode(x[:7])
    assert codes.shape == (7, 16)
    assert codes.dtype == np.uint8
    assert set(np.unique(codes)) <= {0, 1}


def test_itq_beats_lsh_and_chance(clusters: Clusters) -> None:
    x, y = clusters
    rel = relevance(y, y)
    maps = {}
    for cls in (LSH, ITQ):
        codes = cls(16).fit(x).encode(x)
        maps[cls.__name__] = mean_average_precision(hamming_distances(codes, codes), rel)
    assert maps["ITQ"] > 0.75
    assert maps["ITQ"] >= maps["LSH"] > 0.3


def test_itq_bits_balanced(clusters: Clusters) -> None:
    x, _ = clusters
    codes = ITQ(8).fit(x).encode(x)
    assert np.all(np.abs(codes.mean(axis=0) - 0.5) < 0.45)


def test_encode_before_fit_fails() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        ITQ(8).encode(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="xt"):
        LSH(8).fit(np.zeros(5))
