"""Step 2 helpers of samplehub.retrieval.expansion that need no repository."""

from __future__ import annotations

import pytest

from samplehub.retrieval.expansion import PrototypeTarget, nearest_targets


def target(label: str, distance: float) -> PrototypeTarget:
    return PrototypeTarget(label, distance, ("river", label), ("co_occurs",))


def test_nearest_targets_keeps_the_nearest_and_names_the_rest() -> None:
    targets = [target("sea", 0.9), target("bridge", 0.4), target("beach", 0.4), target("lake", 0.2)]
    kept, left_out = nearest_targets(targets, 3)
    assert [t.label for t in kept] == ["lake", "beach", "bridge"]  # ties broken by label id
    assert [t.label for t in left_out] == ["sea"]


def test_nearest_targets_prefers_fewer_hops_at_one_distance() -> None:
    # Eq. 1: subclasses cost 0, so a parent's whole subtree sits at the parent's distance
    path = {"agriculture_land": ("farmland", "agriculture_land"),
            "permanent_crop": ("farmland", "agriculture_land", "permanent_crop"),
            "forest": ("farmland", "agriculture_land", "woodland", "forest"),
            "annual_crop": ("farmland", "agriculture_land", "arable_land", "annual_crop")}
    targets = [PrototypeTarget(label, 1.5, hops, ("parent",) + ("subclass",) * (len(hops) - 2))
               for label, hops in path.items()]
    kept, left_out = nearest_targets(targets, 3)
    assert [t.label for t in kept] == ["agriculture_land", "permanent_crop", "annual_crop"]
    assert [t.label for t in left_out] == ["forest"]


@pytest.mark.parametrize(("limit", "n_kept"), [(None, 4), (10, 4), (0, 0)])
def test_nearest_targets_limits(limit: int | None, n_kept: int) -> None:
    targets = [target(name, d) for name, d in (("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4))]
    kept, left_out = nearest_targets(targets, limit)
    assert len(kept) == n_kept and len(kept) + len(left_out) == 4


def test_nearest_targets_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="max_prototype_labels"):
        nearest_targets([target("a", 0.1)], -1)
