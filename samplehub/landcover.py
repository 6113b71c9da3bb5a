"""Land-cover statistics of the catalog's samples, cached per (sample, ESFormer version).

Paper: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``, section II.A:
each image's land-cover class distribution X (the share of its pixels in each class) is
what HIR's stage 2 compares by Eq. 1. The champion ESFormer
(:func:`samplehub.models.hir_model.load_landcover_model`, trained weakly on image labels)
predicts it; multispectral samples are first harmonized to three channels as for features.

Storage contract: the Delta table ``landcover_stats`` (partitioned by dataset) holds one row
per (``sample_id``, ``model_version``) with ``proportions`` (list<float32>, one value per
class of the model's ``classes`` tag, summing to 1); :func:`load_landcover_stats` reads it
as ``(ids, P)``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from samplehub.catalog import Catalog
from samplehub.catalog.vectors import sample_rows, stored_sample_ids, vector_column, vector_rows
from samplehub.feature_store import PIXEL_COLUMNS, image_batches
from samplehub.models.hir_model import LandcoverModel, landcover_classes, load_landcover_model
from samplehub.progress import progress_bar
from samplehub.repository import Repository

TABLE = "landcover_stats"


@dataclass
class LandcoverReport:
    """What one ``landcover_stats`` run did.

    Attributes:
        dataset: the dataset.
        model_version: the ESFormer version (``esformer-v<n>``).
        classes: the land-cover classes, in column order.
        total: catalog samples of the dataset.
        computed: samples predicted by this run.
        cached: samples that already had statistics of this version.
        seconds: wall time.
        mean: mean proportion of each class over the samples computed now.
    """

    dataset: str
    model_version: str
    classes: list[str]
    total: int = 0
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    mean: np.ndarray | None = None


def compute_landcover_stats(
    repo: Repository, dataset: str, model: LandcoverModel | None = None, progress: bool = False
) -> LandcoverReport:
    """Predict the statistics of the dataset's samples that have none of the champion's version.

    Each batch is appended in one Delta commit, so an interrupted run resumes and a re-run
    with nothing new computes nothing.

    Raises:
        IndexNotTrainedError: no champion ESFormer.
        DatasetNotFoundError: ``dataset`` is not in the catalog.
    """
    start = time.perf_counter()
    version, classes = landcover_classes(repo.config)
    rows = repo.catalog.samples(dataset, columns=PIXEL_COLUMNS)
    done = stored_sample_ids(repo.catalog, TABLE, dataset, version)
    todo = rows[~rows["sample_id"].isin(done)]
    report = LandcoverReport(dataset, version, classes, total=len(rows),
                             cached=len(rows) - len(todo))
    if len(todo) and model is None:  # load weights only when there is work
        model = load_landcover_model(repo.config, repo.models)
    sums = np.zeros(len(classes), np.float64)
    store = repo.store.dataset(dataset)
    with progress_bar(f"landcover {dataset}", len(todo), "img", progress) as bar:
        for batch, images in image_batches(store, todo, repo.config.executor.batch_size):
            P = model.proportions_of(images, repo.config.hir.batch)  # type: ignore[union-attr]
            ids = batch["sample_id"].to_numpy()
            repo.catalog.append(TABLE, sample_rows(ids, dataset, version,
                                                   {"proportions": vector_column(P)}))
            sums += P.sum(axis=0)
            report.computed += len(batch)
            bar.update(len(batch))
    report.mean = (sums / report.computed).astype(np.float32) if report.computed else None
    report.seconds = time.perf_counter() - start
    return report


def load_landcover_stats(
    catalog: Catalog, model_version: str, datasets: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The stored statistics of one ESFormer version.

    Returns:
        ``ids`` (n,) int64, ascending and unique, and ``P`` (n, C) float32 in that order;
        (0,) and (0, 0) when nothing is stored.
    """
    expression = pc.field("model_version") == model_version
    if datasets is not None:
        expression = expression & pc.field("dataset").isin(list(datasets))
    table = catalog.read(TABLE, columns=["sample_id", "proportions"],
                         filter_expression=expression)
    ids = table.column("sample_id").to_numpy()
    if not len(ids):
        return ids.astype(np.int64), np.zeros((0, 0), np.float32)
    P = vector_rows(table.column("proportions"))
    ids, first = np.unique(ids, return_index=True)
    return ids.astype(np.int64), P[first]


def sample_landcover(repo: Repository, sample_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """``{sample_id: {class: share}}`` of the samples with the champion ESFormer's statistics.

    Empty when there is no champion (nothing is trained yet).
    """
    from samplehub.models.hir_model import ESFORMER, champion

    if not len(sample_ids) or champion(repo.config, ESFORMER) is None:
        return {}
    version, classes = landcover_classes(repo.config)
    ids, P = load_landcover_stats(repo.catalog, version)
    wanted = np.asarray(sample_ids, np.int64)
    slot = np.clip(np.searchsorted(ids, wanted), 0, max(len(ids) - 1, 0))
    found = (ids[slot] == wanted) if len(ids) else np.zeros(len(wanted), bool)
    return {int(sid): {c: round(float(v), 4) for c, v in zip(classes, P[i], strict=True)}
            for sid, i, ok in zip(wanted, slot, found, strict=True) if ok}
