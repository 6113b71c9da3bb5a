"""``samplehub fsck``: whether the catalog, the image store, the features and the index agree.

Every writer commits in an order that keeps readers right after a crash (pixels before
catalog rows, features after their samples, an index version published by one link swap),
so a killed run can leave only things nobody references yet:

- store rows past a dataset's last committed catalog row (a batch written, its commit lost);
- Parquet part files of catalog rows or features that executors wrote and no commit
  references (a Spark run killed before its driver committed);
- index shards in the catalog's ``_scratch`` (a Spark index build killed before it merged);
- index stagings (a save killed before it published).

Those are *reclaimable*: the next run of the same kind drops them, and ``--repair``
drops them now, holding the same writer locks as the runs, so it never touches the work
of a live one. Anything else found is *inconsistent* and needs a person: duplicated
sample ids, catalog rows pointing past the stored pixels, feature rows of samples not in
the catalog, or an index holding ids the catalog lacks.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from samplehub.index.files import drop_stagings, versions_folder
from samplehub.index.ivfpq import indexed_ids, load_index
from samplehub.index.lifecycle import drop_scratch, index_path, scratch_builds, scratch_folder
from samplehub.ingest import committed_rows, reclaim_uncommitted, uncommitted_rows
from samplehub.models.feature_model import model_version
from samplehub.repository import Repository


@dataclass
class Finding:
    """One thing found.

    Attributes:
        where: the dataset, table or index it concerns.
        what: a sentence a person can act on.
        reclaimable: left by a killed run and safe to drop (``--repair`` does).
        repaired: ``--repair`` dropped it.
    """

    where: str
    what: str
    reclaimable: bool = False
    repaired: bool = False


@dataclass
class FsckReport:
    """What :func:`check_repository` found."""

    datasets: int = 0
    samples: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing found that is still there (repaired findings are gone)."""
        return all(f.repaired for f in self.findings)

    def add(self, where: str, what: str, reclaimable: bool = False) -> Finding:
        """Record a finding and return it."""
        finding = Finding(where, what, reclaimable)
        self.findings.append(finding)
        return finding


def check_repository(repo: Repository, repair: bool = False) -> FsckReport:
    """Check catalog against store, features against catalog, the index against both.

    Args:
        repo: the repository.
        repair: drop what killed runs left behind (reclaimable findings), each under the
            writer lock its writers hold.
    """
    report = FsckReport()
    catalog = repo.catalog
    rows = catalog.read("samples", columns=["sample_id", "dataset", "zarr_array", "zarr_index"])
    report.samples = rows.num_rows
    # A store without a catalog row is what an ingest killed before its first commit left.
    names = sorted(set(rows.column("dataset").to_pylist())
                   | set(catalog.read("datasets", columns=["dataset"])
                         .column("dataset").to_pylist())
                   | set(repo.store.datasets()))
    report.datasets = len(names)
    ids = rows.column("sample_id").to_numpy()
    for sample_id, count in Counter(ids.tolist()).items():
        if count > 1:
            report.add("samples", f"sample id {sample_id} is catalogued {count} times")
    for name in names:
        _check_dataset(repo, name, report, repair)
    _check_features(repo, ids, report)
    _check_index(repo, ids, report, repair)
    return report


def _check_dataset(repo: Repository, name: str, report: FsckReport, repair: bool) -> None:
    target = repo.store.dataset(name)
    stored = target.row_counts()
    committed = committed_rows(repo.catalog, name)
    for key, rows in committed.items():
        if stored.get(key, 0) < rows:
            report.add(name, f"catalog rows point at {key}[{rows - 1}] but the store holds "
                             f"{stored.get(key, 0)} rows there; re-ingest the dataset")
    _check_part_files(repo, name, "samples", repo.locks.dataset(name), report, repair)
    _check_part_files(repo, name, "features", repo.locks.features(name), report, repair)
    extra = uncommitted_rows(committed, stored)
    if not extra:
        return
    finding = report.add(
        name,
        f"{sum(extra.values())} store rows past the last catalog commit "
        f"({', '.join(f'{k}: {n}' for k, n in extra.items())}), left by an interrupted ingest",
        reclaimable=True,
    )
    if repair:
        with repo.locks.dataset(name):
            reclaim_uncommitted(repo.catalog, target, name)
        finding.repaired = True


def _check_part_files(repo: Repository, name: str, table: str,
                      lock: AbstractContextManager[None], report: FsckReport,
                      repair: bool) -> None:
    files = repo.catalog.uncommitted_files(table, name)
    if not files:
        return
    finding = report.add(name, f"{len(files)} {table} part files no commit references "
                               f"(first: {files[0]}), left by an interrupted Spark run",
                         reclaimable=True)
    if repair:
        with lock:  # a live run's part files are its own until it commits them
            repo.catalog.drop_uncommitted_files(table, name)
        finding.repaired = True


def _check_features(repo: Repository, catalogued: np.ndarray, report: FsckReport) -> None:
    features = repo.catalog.read("features", columns=["sample_id", "model_version"])
    for version in sorted(set(features.column("model_version").to_pylist())):
        ids = features.filter(pc.field("model_version") == version).column("sample_id")
        ids_np = ids.to_numpy()
        duplicated = len(ids_np) - len(np.unique(ids_np))
        if duplicated:
            report.add("features", f"{duplicated} samples have more than one {version} vector")
        orphan = np.setdiff1d(ids_np, catalogued)
        if len(orphan):
            report.add("features", f"{len(orphan)} {version} vectors belong to samples not in "
                                   f"the catalog (first: {orphan[0]})")


def _check_index(
    repo: Repository, catalogued: np.ndarray, report: FsckReport, repair: bool
) -> None:
    version = model_version(repo.config)
    path = index_path(repo.config, version)
    where = f"index {version}"
    with repo.locks.index(path):
        # Under the index writers' lock a staging or scratch belongs to no live build.
        scratch = scratch_folder(repo, path)
        builds = scratch_builds(repo, scratch)
        if builds:
            finding = report.add(where, f"{len(builds)} Spark index builds' shards under "
                                        f"{scratch}, left by interrupted builds",
                                 reclaimable=True)
            if repair:
                drop_scratch(repo, scratch)
                finding.repaired = True
        stagings = sorted(versions_folder(path).glob(".staging-*"))
        if stagings:
            finding = report.add(where, f"{len(stagings)} unpublished index versions left by "
                                        f"interrupted saves", reclaimable=True)
            if repair:
                drop_stagings(path)
                finding.repaired = True
    if not (Path(path) / "index.faiss").is_file():
        return
    unknown = np.setdiff1d(indexed_ids(load_index(path, mmap=True)), catalogued)
    if len(unknown):
        report.add(where, f"{len(unknown)} indexed ids are not in the catalog "
                          f"(first: {unknown[0]})")
