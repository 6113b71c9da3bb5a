"""Export a logical dataset to a folder, atomically.

Layout of ``out/``::

    <split>/<label>/<sample_id>.png|.tif   ImageFolder tree (torchvision ``ImageFolder``)
    manifest.parquet, manifest.csv         one row per sample: provenance, kind, score, split
    stac/collection.json, stac/<item>/     STAC Collection of Items, label extension (pystac)
    images.zarr                            Zarr bundle of the selected images
    spec.json                              the spec, its query id and the build id

Everything is written into a temporary sibling of ``out`` and renamed into place at the
end, so ``out`` is either the complete export or absent (or, with ``overwrite``, the
previous complete export). The reviewers' latest decisions for the spec's query are
applied at export time: rejected samples never leave, and ``supplementary`` picks which
supplementary samples do (``accepted``: only those accepted in review; ``unrejected``:
all not rejected; ``none``: no supplementary samples).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pystac

from samplehub.errors import ConfigError, ExportExistsError, SampleNotFoundError
from samplehub.export.builder import LogicalDataset, Member
from samplehub.export.bundle import ZarrBundle
from samplehub.export.feedback import join_list, latest_decisions
from samplehub.export.files import file_suffix, safe_name, write_sample
from samplehub.export.stac import stac_collection, stac_item, write_stac
from samplehub.progress import progress_bar
from samplehub.repository import Repository

SupplementaryPolicy = Literal["accepted", "unrejected", "none"]
FORMATS: tuple[str, ...] = ("imagefolder", "stac", "zarr")
BATCH = 256
CATALOG_COLUMNS = [
    "sample_id", "uri", "labels", "unified_labels", "width", "height", "bands", "dtype",
    "sensor", "gsd", "crs", "georeferenced", "minx", "miny", "maxx", "maxy", "footprint",
    "time", "ingested_at", "zarr_array", "zarr_index", "dataset", "relpath",
]


@dataclass
class ExportReport:
    """What an export wrote.

    Attributes:
        path: the export folder.
        samples: exported samples.
        dropped: members left out by review decisions or the supplementary policy.
        counts: ``{label: {split: n}}``.
        files: written files relative to ``path`` (manifests, STAC, spec; not every image).
    """

    path: Path
    samples: int
    dropped: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def reviewed_members(
    logical: LogicalDataset, decisions: dict[int, str], supplementary: SupplementaryPolicy
) -> list[Member]:
    """Members that leave under the review ``decisions`` and the supplementary policy."""
    if supplementary not in ("accepted", "unrejected", "none"):
        raise ConfigError(
            f"supplementary must be 'accepted', 'unrejected' or 'none', got {supplementary!r}"
        )
    kept = []
    for m in logical.members:
        decision = decisions.get(m.sample_id)
        if decision == "reject":
            continue
        if m.kind == "supplementary" and (
            supplementary == "none" or (supplementary == "accepted" and decision != "accept")
        ):
            continue
        kept.append(m)
    return kept


def export_dataset(
    repo: Repository,
    logical: LogicalDataset,
    out: str | Path,
    formats: Sequence[str] = FORMATS,
    supplementary: SupplementaryPolicy = "unrejected",
    overwrite: bool = False,
    progress: bool = False,
) -> ExportReport:
    """Write ``logical`` to ``out`` (see the module docstring for the layout).

    Args:
        repo: where the pixels and catalog rows come from.
        logical: the built dataset.
        out: the export folder (must not exist unless ``overwrite``).
        formats: any of ``imagefolder``, ``stac``, ``zarr``; the manifests are always written.
        supplementary: which supplementary samples leave (``accepted``, ``unrejected``, ``none``).
        overwrite: replace an existing ``out`` (atomically).
        progress: show a progress bar.

    Raises:
        ExportExistsError: ``out`` exists and ``overwrite`` is false.
        ConfigError: an unknown format or policy.
        SampleNotFoundError: a member is no longer in the catalog.
    """
    out = Path(out).expanduser().resolve()
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    if out.exists() and not overwrite:
        raise ExportExistsError(f"export folder {out} exists; pass overwrite (--overwrite)")
    members = reviewed_members(
        logical, latest_decisions(repo.catalog, logical.spec_id), supplementary
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = write_export(repo, logical, members, staging, formats, progress)
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for m in members:
        counts[m.label][m.split] += 1
    return ExportReport(
        path=out,
        samples=len(members),
        dropped=len(logical.members) - len(members),
        counts={label: dict(splits) for label, splits in counts.items()},
        files=files,
    )


def write_export(
    repo: Repository,
    logical: LogicalDataset,
    members: list[Member],
    root: Path,
    formats: Sequence[str],
    progress: bool,
) -> list[str]:
    """Write every part of the export under ``root``; returns the non-image files."""
    rows = catalog_rows(repo, [m.sample_id for m in members])
    from samplehub.landcover import sample_landcover  # torch, only for an export

    shares = sample_landcover(repo, [m.sample_id for m in members]) if "stac" in formats else {}
    classes = list(logical.spec.labels)
    splits = list(logical.spec.split.ratios)
    bundle = ZarrBundle(root / "images.zarr", classes, splits) if "zarr" in formats else None
    manifest: list[dict[str, Any]] = []
    items: list[pystac.Item] = []
    with progress_bar("export", total=len(members), unit="sample", enabled=progress) as bar:
        for batch, images in read_batches(repo, members, rows):
            location: list[tuple[str | None, int | None]] = [(None, None)] * len(batch)
            if bundle is not None:
                array, start = bundle.append(
                    images,
                    [m.sample_id for m in batch],
                    [classes.index(m.label) for m in batch],
                    [splits.index(m.split) for m in batch],
                )
                location = [(array, start + i) for i in range(len(batch))]
            for m, image, (key, index) in zip(batch, images, location, strict=True):
                row = rows[m.sample_id]
                href: str | None = None
                if "imagefolder" in formats:
                    folder = root / m.split / safe_name(m.label)
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"{m.sample_id}{file_suffix(image)}"
                    write_sample(path, image, row)
                    href = path.relative_to(root).as_posix()
                entry = manifest_row(m, row, href, key, index)
                manifest.append(entry)
                if "stac" in formats:
                    image = root / href if href is not None else None
                    items.append(stac_item(row, entry, classes, image, shares.get(m.sample_id)))
            bar.update(len(batch))
    written = write_manifest(root, manifest)
    if "stac" in formats:
        description = (
            f"SampleHub export of {logical.spec.name!r}: build {logical.build_id}, "
            f"query {logical.spec_id}"
        )
        collection = stac_collection(logical.spec.name, description, items, classes)
        written.append(write_stac(root, collection))
    spec = {
        "build_id": logical.build_id,
        "spec_id": logical.spec_id,
        "spec": logical.spec.model_dump(mode="json"),
        "plan": logical.plan,
    }
    (root / "spec.json").write_text(json.dumps(spec, indent=2, default=str))
    written.append("spec.json")
    if bundle is not None:
        written.append("images.zarr")
    return written


def catalog_rows(repo: Repository, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Catalog rows of ``ids`` by id.

    Raises:
        SampleNotFoundError: some ids are no longer in the catalog.
    """
    table = repo.catalog.read(
        "samples", columns=CATALOG_COLUMNS, filter_expression=pc.field("sample_id").isin(ids)
    )
    rows = {int(r["sample_id"]): r for r in table.to_pylist()}
    missing = sorted(set(ids) - set(rows))
    if missing:
        raise SampleNotFoundError(
            f"samples {missing[:10]} of this build are no longer in the catalog at "
            f"{repo.catalog.root}; rebuild the dataset"
        )
    return rows


def read_batches(
    repo: Repository, members: list[Member], rows: dict[int, dict[str, Any]]
) -> Iterable[tuple[list[Member], Any]]:
    """(members, (n, C, H, W) images) per store array, at most ``BATCH`` at a time."""
    groups: dict[tuple[str, str], list[Member]] = defaultdict(list)
    for m in members:
        row = rows[m.sample_id]
        groups[(row["dataset"], row["zarr_array"])].append(m)
    for (dataset, key), group in groups.items():
        store = repo.store.dataset(dataset)
        for start in range(0, len(group), BATCH):
            batch = group[start : start + BATCH]
            indexes = np.array([rows[m.sample_id]["zarr_index"] for m in batch], dtype=np.int64)
            yield batch, store.images(key, indexes)


def manifest_row(
    m: Member, row: dict[str, Any], href: str | None, key: str | None, index: int | None
) -> dict[str, Any]:
    """One manifest row: the member, its file, its bundle location and its provenance."""
    return {
        **asdict(m),
        "file": href,
        "zarr_array": key,
        "zarr_index": index,
        "source_uri": row["uri"],
        "source_labels": list(row["labels"] or []),
        "unified_labels": list(row["unified_labels"] or []),
        **{k: row[k] for k in ("width", "height", "bands", "dtype", "sensor", "gsd", "crs",
                               "minx", "miny", "maxx", "maxy", "time")},
    }


def write_manifest(root: Path, manifest: list[dict[str, Any]]) -> list[str]:
    """``manifest.parquet`` (lists kept) and ``manifest.csv`` (lists joined with ``|``)."""
    frame = pd.DataFrame(manifest, columns=MANIFEST_COLUMNS)
    frame.to_parquet(root / "manifest.parquet", index=False)
    flat = frame.copy()
    for column in ("labels", "path", "source_labels", "unified_labels", "bands"):
        flat[column] = flat[column].map(join_list)
    flat.to_csv(root / "manifest.csv", index=False)
    return ["manifest.parquet", "manifest.csv"]


def replace_folder(staging: Path, out: Path) -> None:
    """Move ``staging`` to ``out``; an existing ``out`` is swapped out, then removed."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


MANIFEST_COLUMNS = [
    "sample_id", "dataset", "relpath", "label", "labels", "kind", "score", "reason", "path",
    "split", "file", "zarr_array", "zarr_index", "source_uri", "source_labels",
    "unified_labels", "width", "height", "bands", "dtype", "sensor", "gsd", "crs", "minx",
    "miny", "maxx", "maxy", "time",
]
