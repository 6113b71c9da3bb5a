"""The builder's split keeps copies of an image and Hilbert-cell neighbours on one side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from query_double import fake_run_query

from samplehub.export import build_dataset, parse_spec
from samplehub.export.builder import (
    Member,
    Placement,
    assign_splits,
    placement_of,
    split_groups,
)
from samplehub.hilbert import HILBERT_ORDER, hilbert_key
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

FIXTURES = Path(__file__).resolve().parents[2] / "data"


def member(sample_id: int, label: str) -> Member:
    return Member(sample_id, "d", f"{sample_id}.tif", label, [label], "exact", 1.0, "")


def neighbourhood(n: int, seed: int = 0) -> tuple[list[Member], Placement]:
    """``n`` georeferenced samples around 10E 50N (clusters of close centres), some copies."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform((9.5, 49.5), (10.5, 50.5), size=(n // 4, 2))
    points = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.002, (n, 2))
    keys = hilbert_key(points[:, 0], points[:, 1]).tolist()
    members = [member(i, ("river", "forest")[i % 2]) for i in range(n)]
    images = {i: f"hash{i}" for i in range(n)}
    images.update({i: f"hash{i - 1}" for i in range(1, n, 10)})  # every tenth is a copy
    return members, Placement(image=images, hilbert=dict(enumerate(keys)))


def cell(key: int, level: int) -> int:
    return key >> 2 * (HILBERT_ORDER - level)


def test_neighbours_and_copies_never_straddle_splits() -> None:
    members, placement = neighbourhood(400)
    spec = parse_spec({"name": "s", "labels": ["river", "forest"],
                       "split": {"ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 1}})
    groups = assign_splits(members, spec, placement)
    assert sum(len(g) for g in groups) == 400 and any(len(g) > 2 for g in groups)
    split_of_cell: dict[int, str] = {}
    split_of_image: dict[str, str] = {}
    for m in members:
        key = cell(placement.hilbert[m.sample_id], spec.split.hilbert_level)
        assert split_of_cell.setdefault(key, m.split) == m.split
        assert split_of_image.setdefault(placement.image[m.sample_id], m.split) == m.split
    for label in spec.labels:
        splits = [m.split for m in members if m.label == label]
        assert abs(splits.count("train") / len(splits) - 0.6) < 0.15
        assert splits.count("test") > 0 and splits.count("val") > 0


def test_without_neighbours_the_split_sizes_are_exact() -> None:
    members = [member(i, "river") for i in range(10)]
    spec = parse_spec({"name": "s", "labels": ["river"],
                       "split": {"ratios": {"train": 0.8, "val": 0.1, "test": 0.1}}})
    groups = assign_splits(members, spec)
    assert len(groups) == 10
    assert sorted(m.split for m in members) == ["test", *["train"] * 8, "val"]


def test_groups_join_copies_and_cells() -> None:
    members = [member(i, "river") for i in range(4)]
    far = hilbert_key(np.array([10.0, 10.001, 60.0, 60.0]), np.array([50.0, 50.0, 0.0, 0.0]))
    placement = Placement(image={0: "a", 1: "b", 2: "c", 3: "a"},
                          hilbert=dict(enumerate(far.tolist()[:3])))
    groups = split_groups(members, placement, 14)
    assert [[m.sample_id for m in g] for g in groups] == [[0, 1, 3], [2]]
    assert [[m.sample_id for m in g] for g in split_groups(members, placement, None)] == [
        [0, 3], [1], [2]
    ]


def test_bigearthnet_s1_and_s2_of_one_place_share_a_split(small_repo: Repository) -> None:
    spec = {"name": "ben", "labels": ["Non-irrigated arable land"],
            "split": {"ratios": {"train": 0.5, "test": 0.5}}}
    together = build_dataset(small_repo, parse_spec(spec), query=fake_run_query)
    assert {m.relpath.split("/")[0] for m in together.members} == {"S1", "S2"}
    assert len({m.split for m in together.members}) == 1
    assert together.plan["split"] == {"hilbert_level": 14, "groups": 1, "grouped_members": 2}
    apart = parse_spec({**spec, "split": {**spec["split"], "hilbert_level": None}})
    assert {m.split for m in build_dataset(small_repo, apart, query=fake_run_query).members} \
        == {"train", "test"}


def test_copies_of_an_image_are_one_member(small_repo: Repository, tmp_path: Path) -> None:
    rivers = sorted((FIXTURES / "folder_tree" / "water" / "river").glob("*.jpg"))
    (tmp_path / "copy" / "river").mkdir(parents=True)
    for path in rivers:
        Image.open(path).save(tmp_path / "copy" / "river" / f"{path.stem}.png")
    small_repo.ingest(SourceSpec(name="copy", uri=str(tmp_path / "copy")))
    spec = parse_spec({"name": "r", "labels": ["river"], "include_supplementary": False})
    hits = fake_run_query(small_repo, spec.query_spec()).hits
    logical = build_dataset(small_repo, spec, query=fake_run_query)
    assert len(hits) == 5 + len(rivers)  # 4 in tree, 1 in ml, and the 4 copies
    assert len(logical.members) == 5
    placement = placement_of(small_repo.catalog, [m.sample_id for m in logical.members])
    assert len(set(placement.image.values())) == 5


@pytest.mark.parametrize("level", [0, HILBERT_ORDER])
def test_hilbert_level_bounds_are_accepted(level: int) -> None:
    assert parse_spec({"name": "s", "labels": ["x"],
                       "split": {"hilbert_level": level}}).split.hilbert_level == level
