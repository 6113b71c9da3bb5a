"""A kill harness: SIGKILL a real SampleHub process at seeded points, re-run it, compare.

Used by ``tests/samplehub/test_kills.py`` (a few kills, in ``make test``) and by
``bench/reliability.py`` (20 per stage, for ``bench/results/reliability.json``).

Each stage runs as its own process, the way a user or Dagster runs it:

- ``ingest``: the ``samplehub ingest`` command;
- ``features``: :func:`samplehub.feature_store.compute_features` of one dataset (the body
  of the ``image_features`` asset);
- ``index``: :func:`samplehub.index.lifecycle.update_ivfpq_index` (the body of the
  ``ivfpq_index`` asset).

A reference run goes uninterrupted first. For every kill the stage starts over on a copy
of the home as it was before the stage, is killed with SIGKILL at a delay after its first
write drawn uniformly (seeded) from the reference run's span from its first write to its
end, and is then re-run to completion. The outcome compares the result with the
reference: rows lost, rows duplicated, and whether everything else is identical; the
repository check (:func:`samplehub.fsck.check_repository`) must then find nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from samplehub.fsck import check_repository
from samplehub.records import content_hash
from samplehub.repository import Repository

REPO = Path(__file__).resolve().parents[1]
SAMPLEHUB = str(Path(sys.executable).parent / "samplehub")
STAGES = ("ingest", "features", "index")


@dataclass
class Kill:
    """One injected kill and what the re-run made of it."""

    delay_s: float
    killed: bool
    """The process was still running when the signal came (else it had finished)."""
    committed_at_kill: int
    """Rows of the stage's table (catalog rows, feature rows, indexed ids) at the kill."""
    leftovers_at_kill: int
    """Findings of the repository check between the kill and the re-run."""
    rerun_rc: int
    lost: int
    duplicated: int
    identical: bool
    clean_after: bool
    """The repository check found nothing after the re-run."""

    @property
    def recovered(self) -> bool:
        return (self.rerun_rc == 0 and self.identical and not self.lost and not self.duplicated
                and self.clean_after)


@dataclass
class StageKills:
    """Every kill of one stage, with the reference run's timing."""

    stage: str
    reference_s: float
    first_write_s: float
    kills: list[Kill] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """``injected / recovered / lost / duplicated`` plus where the kills landed."""
        return {
            "injected": len(self.kills),
            "recovered": sum(k.recovered for k in self.kills),
            "lost": sum(k.lost for k in self.kills),
            "duplicated": sum(k.duplicated for k in self.kills),
            "killed_mid_run": sum(k.killed for k in self.kills),
            "killed_after_partial_commit": sum(k.killed and k.committed_at_kill > 0
                                               for k in self.kills),
            "killed_with_leftovers": sum(k.leftovers_at_kill > 0 for k in self.kills),
            "reference_s": round(self.reference_s, 2),
            "first_write_s": round(self.first_write_s, 2),
            "kills": [asdict(k) | {"recovered": k.recovered} for k in self.kills],
        }


@dataclass
class Stage:
    """How to run one stage and what to compare after it.

    Attributes:
        command: the process's argv.
        snapshot: the stage's result in a home, comparable across homes (an Arrow table
            sorted by key, or an array).
        keys: the ids of the stage's result (for lost and duplicated counts).
        written: whether the stage has started its work: the dataset's store opened
            (ingest: pixels are written from there on, commits follow each batch), the
            first feature commit, or for the index its ready marker (it writes only at
            the end).
        intact: whether what the result references can be read back (stored pixels).
    """

    command: list[str]
    snapshot: Callable[[Repository], Any]
    keys: Callable[[Repository], np.ndarray]
    written: Callable[[Path], bool]
    intact: Callable[[Repository], bool] = lambda repo: True


def environment(home: Path, overrides: list[str]) -> dict[str, str]:
    """The stage's environment: its home, offline models, and Hydra overrides."""
    env = dict(os.environ, SAMPLEHUB_HOME=str(home), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    env["SAMPLEHUB_KILL_OVERRIDES"] = "\n".join(overrides)
    return env


def open_home(home: Path, overrides: list[str]) -> Repository:
    """The repository of ``home`` under the same overrides as the stage."""
    return Repository.open([*overrides, f"home={home}"])


def catalog_snapshot(repo: Repository, dataset: str) -> pa.Table:
    """The dataset's catalog rows without their ingest time, sorted by sample id."""
    rows = repo.catalog.read("samples", dataset)
    return rows.drop_columns(["ingested_at"]).sort_by("sample_id")


def stored_pixels_match(repo: Repository, dataset: str) -> bool:
    """Every catalog row's stored pixels hash to the row's content hash."""
    rows = repo.catalog.read("samples", dataset,
                             columns=["zarr_array", "zarr_index", "content_hash"])
    target = repo.store.dataset(dataset)
    keys = rows.column("zarr_array").to_pylist()
    index = rows.column("zarr_index").to_numpy()
    hashes = rows.column("content_hash").to_pylist()
    for key in sorted(set(keys)):
        members = np.flatnonzero(np.asarray(keys) == key)
        images = target.images(key, index[members])
        if any(content_hash(image) != hashes[i] for i, image in zip(members, images, strict=True)):
            return False
    return True


def feature_snapshot(repo: Repository, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of the dataset's stored features, sorted by id."""
    from samplehub.feature_store import load_features
    from samplehub.models.feature_model import model_version

    return load_features(repo.catalog, model_version(repo.config), [dataset])


def index_snapshot(repo: Repository) -> np.ndarray:
    """The sorted ids of the published IVF-PQ index (empty when none is published)."""
    from samplehub.index.ivfpq import indexed_ids, load_index
    from samplehub.index.lifecycle import index_path
    from samplehub.models.feature_model import model_version

    path = index_path(repo.config, model_version(repo.config))
    if not (path / "index.faiss").is_file():
        return np.zeros(0, dtype=np.int64)
    return np.sort(indexed_ids(load_index(path)))


def python_stage(name: str, code: str) -> list[str]:
    """argv running ``code`` against the repository of the environment's home.

    After its imports the process creates ``<home>/.ready-<name>``: a stage that writes
    nothing until its very end (an index update) counts its kill points from there.
    """
    prelude = ("import os; from pathlib import Path; from samplehub.repository import "
               "Repository; overrides = [o for o in os.environ['SAMPLEHUB_KILL_OVERRIDES']"
               ".split(chr(10)) if o]; repo = Repository.open(overrides); "
               f"(Path(os.environ['SAMPLEHUB_HOME']) / '.ready-{name}').touch(); ")
    return [sys.executable, "-c", prelude + code]


def stages(uri: str, dataset: str, overrides: list[str]) -> dict[str, Stage]:
    """The three stages over one dataset."""
    sets = [arg for o in overrides for arg in ("--set", o)]

    def sample_ids(repo: Repository) -> np.ndarray:
        return repo.catalog.read("samples", dataset, columns=["sample_id"]) \
            .column("sample_id").to_numpy()

    def features(repo: Repository) -> tuple[np.ndarray, np.ndarray]:
        return feature_snapshot(repo, dataset)

    def feature_keys(repo: Repository) -> np.ndarray:
        return repo.catalog.read("features", dataset, columns=["sample_id"]) \
            .column("sample_id").to_numpy()

    def has_delta_commit(table: str) -> Callable[[Path], bool]:
        return lambda home: any((home / "catalog" / table / "_delta_log").glob("*.json"))


    return {
        "ingest": Stage(
            [SAMPLEHUB, "ingest", uri, "--name", dataset, *sets],
            lambda repo: catalog_snapshot(repo, dataset), sample_ids,
            lambda home: (home / "zarr" / f"{dataset}.zarr").exists(),
            lambda repo: stored_pixels_match(repo, dataset)),
        "features": Stage(
            python_stage("features", "from samplehub.feature_store import compute_features; "
                         f"compute_features(repo, {dataset!r})"),
            features, feature_keys, has_delta_commit("features")),
        "index": Stage(
            python_stage("index", "from samplehub.index.lifecycle import update_ivfpq_index; "
                         "update_ivfpq_index(repo)"),
            index_snapshot, index_snapshot, lambda home: (home / ".ready-index").exists()),
    }


def timed_reference(stage: Stage, home: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run the stage uninterrupted; seconds to its first write and to its end."""
    started = time.perf_counter()
    process = subprocess.Popen(stage.command, env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    while process.poll() is None:
        if first is None and stage.written(home):
            first = time.perf_counter() - started
        time.sleep(0.02)
    total = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"reference run of {stage.command[:3]} failed: "
                           f"{process.stderr.read().decode()[-2000:] if process.stderr else ''}")
    return (first if first is not None else total), total


def kill_after_first_write(
    process: subprocess.Popen[bytes], stage: Stage, home: Path, delay: float
) -> bool:
    """SIGKILL ``process`` ``delay`` seconds after its first write; False if it ended first.

    Counting from the first write rather than the start keeps the kill points spread over
    the work itself whatever the interpreter's start-up took on a busy machine.
    """
    while process.poll() is None and not stage.written(home):
        time.sleep(0.01)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def equal(a: Any, b: Any) -> bool:
    """Stage snapshots equal: Arrow tables exactly, features within float tolerance."""
    if isinstance(a, pa.Table):
        return bool(a.equals(b))
    if isinstance(a, tuple):
        return (np.array_equal(a[0], b[0]) and a[1].shape == b[1].shape
                and bool(np.allclose(a[1], b[1], atol=1e-4)))
    return bool(np.array_equal(a, b))


def kill_stage(
    name: str,
    stage: Stage,
    before: Path,
    work: Path,
    overrides: list[str],
    kills: int,
    seed: int,
) -> StageKills:
    """Reference run, then ``kills`` killed-and-re-run copies of the home ``before``.

    Args:
        name: the stage's name.
        stage: what to run and compare.
        before: the home as it is before the stage (left untouched).
        work: a scratch folder for the copies.
        overrides: the Hydra overrides of the stage's configuration.
        kills: how many kills to inject.
        seed: seeds the kill delays.
    """
    reference_home = work / f"{name}-reference"
    shutil.rmtree(reference_home, ignore_errors=True)
    shutil.copytree(before, reference_home, symlinks=True)
    first, total = timed_reference(stage, reference_home, environment(reference_home, overrides))
    reference_repo = open_home(reference_home, overrides)
    reference = stage.snapshot(reference_repo)
    expected = np.unique(stage.keys(reference_repo))
    result = StageKills(name, total, first)
    rng = np.random.default_rng(seed)
    for delay in rng.uniform(0.0, total - first, size=kills):
        home = work / f"{name}-killed"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(before, home, symlinks=True)
        env = environment(home, overrides)
        process = subprocess.Popen(stage.command, env=env, cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed = kill_after_first_write(process, stage, home, float(delay))
        repo = open_home(home, overrides)
        committed = len(stage.keys(repo))
        leftovers = len(check_repository(repo).findings)
        rerun = subprocess.run(stage.command, env=env, cwd=REPO, capture_output=True)
        repo = open_home(home, overrides)
        keys = stage.keys(repo)
        result.kills.append(Kill(
            delay_s=round(float(delay), 3),
            killed=killed,
            committed_at_kill=committed,
            leftovers_at_kill=leftovers,
            rerun_rc=rerun.returncode,
            lost=len(np.setdiff1d(expected, keys)),
            duplicated=int(len(keys) - len(np.unique(keys))),
            identical=equal(reference, stage.snapshot(repo)) and stage.intact(repo),
            clean_after=check_repository(repo).clean,
        ))
    shutil.rmtree(work / f"{name}-killed", ignore_errors=True)
    return result


def run_kills(
    uri: str,
    dataset: str,
    work: Path,
    overrides: list[str],
    kills: Mapping[str, int],
    seed: int = 0,
) -> dict[str, StageKills]:
    """Kill each stage ``kills[stage]`` times over one dataset, each after the one before.

    The home before ``features`` is the ingest reference, the home before ``index`` the
    features reference, so each stage starts from a complete previous stage; a stage
    absent from ``kills`` runs once, uninterrupted.
    """
    work.mkdir(parents=True, exist_ok=True)
    before = work / "empty"
    before.mkdir(exist_ok=True)
    results = {}
    for name, stage in stages(uri, dataset, overrides).items():
        if name in kills:
            results[name] = kill_stage(name, stage, before, work, overrides, kills[name], seed)
        else:
            reference = work / f"{name}-reference"
            shutil.rmtree(reference, ignore_errors=True)
            shutil.copytree(before, reference, symlinks=True)
            timed_reference(stage, reference, environment(reference, overrides))
        before = work / f"{name}-reference"
        if not set(kills) - set(results):
            break
    return results
