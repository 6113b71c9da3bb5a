"""Versioned index folders: one link swap publishes a version; readers never mix two."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from samplehub.index.files import (
    collect_versions,
    list_versions,
    publish_version,
    published_folder,
    versions_folder,
)
from samplehub.index.ivfpq import build_ivfpq_index, load_index, save_index


def text_writers(value: str) -> dict[str, Callable[[str], object]]:
    """Two files that must match, the second written after the first."""
    return {
        "a.txt": lambda p: Path(p).write_text(value),
        "b.txt": lambda p: Path(p).write_text(value),
    }


def read_pair(path: Path) -> tuple[str, str]:
    folder = published_folder(path)
    return (folder / "a.txt").read_text(), (folder / "b.txt").read_text()


def test_a_save_publishes_a_new_version_behind_one_relative_link(tmp_path: Path) -> None:
    path = tmp_path / "index" / "m1"
    first = publish_version(path, text_writers("1"))
    second = publish_version(path, text_writers("2"))
    assert first.name == "v000001" and second.name == "v000002"
    assert path.is_symlink() and not os.path.isabs(os.readlink(path))
    assert published_folder(path) == second.resolve()
    assert read_pair(path) == ("2", "2")
    assert (path / "a.txt").read_text() == "2"  # plain paths through the link still work
    assert sorted(p.name for p in versions_folder(path).iterdir()) == ["v000001", "v000002"]


def test_a_failed_save_leaves_the_published_version_and_no_staging(tmp_path: Path) -> None:
    path = tmp_path / "m1"
    publish_version(path, text_writers("1"))

    def crash(p: str) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_version(path, {"a.txt": lambda p: Path(p).write_text("2"), "b.txt": crash})
    assert read_pair(path) == ("1", "1")
    assert [p.name for p in versions_folder(path).iterdir()] == ["v000001"]


def test_a_folder_written_before_versions_loads_and_moves_into_the_store(tmp_path: Path) -> None:
    path = tmp_path / "m1"
    path.mkdir()
    (path / "a.txt").write_text("old")
    (path / "b.txt").write_text("old")
    assert published_folder(path) == path.resolve() and read_pair(path) == ("old", "old")
    publish_version(path, text_writers("new"))
    assert path.is_symlink() and read_pair(path) == ("new", "new")
    assert (versions_folder(path) / "v000000" / "a.txt").read_text() == "old"


def test_without_a_link_readers_take_the_newest_version(tmp_path: Path) -> None:
    path = tmp_path / "m1"
    publish_version(path, text_writers("1"))
    publish_version(path, text_writers("2"))
    path.unlink()  # as if a crash hit between moving an old folder and placing the link
    assert read_pair(path) == ("2", "2")
    assert published_folder(tmp_path / "never") == tmp_path / "never"


def test_old_versions_are_collected_but_the_newest_and_recent_ones_stay(tmp_path: Path) -> None:
    path = tmp_path / "m1"
    for n in range(6):
        publish_version(path, text_writers(str(n)))  # default grace: all replaced just now
    assert len(list_versions(versions_folder(path))) == 6
    collect_versions(path, keep=3, grace_s=0)
    assert [p.name for p in list_versions(versions_folder(path))] == [
        "v000004", "v000005", "v000006"]
    publish_version(path, text_writers("last"), keep=1, grace_s=0)
    assert [p.name for p in list_versions(versions_folder(path))] == ["v000007"]
    assert read_pair(path) == ("last", "last")
    stale = versions_folder(path) / ".staging-crashed"
    stale.mkdir()
    os.utime(stale, (time.time() - 2 * 86_400,) * 2)
    collect_versions(path)
    assert not stale.exists()
    with pytest.raises(ValueError, match="keep must be at least 1"):
        publish_version(path, text_writers("x"), keep=0)


def test_a_reader_racing_a_writer_always_sees_matching_files(tmp_path: Path) -> None:
    path = tmp_path / "m1"
    publish_version(path, text_writers("0" * 10_000))
    stop = threading.Event()
    seen: set[str] = set()
    mismatches: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                publish_version(path, text_writers(str(n % 10) * 10_000), keep=3)
            except BaseException as error:
                errors.append(error)
                return

    def read() -> None:
        while not stop.is_set():
            try:
                a, b = read_pair(path)
            except BaseException as error:
                errors.append(error)
                return
            seen.add(a[:1])
            if a != b:
                mismatches.append((a[:1], b[:1]))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not mismatches
    assert len(seen) > 1  # the readers did see the writer's new versions


def test_an_ivfpq_reader_racing_a_writer_never_pairs_two_saves(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    indexes = []
    for nb in (400, 600):
        xb = rng.normal(size=(nb, 16)).astype(np.float32)
        indexes.append(build_ivfpq_index(xb, np.arange(nb), nlist=4, m=4, nbits=4, coarse="flat"))
    path = tmp_path / "ivfpq" / "m1"
    save_index(indexes[0], path)
    stop = threading.Event()
    loaded: list[tuple[int, int]] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            save_index(indexes[n % 2], path)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            index = load_index(path)
            loaded.append((index.index.ntotal, index.ntotal_at_train))
    finally:
        stop.set()
        writer.join(timeout=30)
    assert all(ntotal == trained for ntotal, trained in loaded)  # index.faiss matches index.json
    assert {ntotal for ntotal, _ in loaded} == {400, 600}
    meta = json.loads((path / "index.json").read_text())
    assert meta["ntotal_at_train"] in (400, 600)
