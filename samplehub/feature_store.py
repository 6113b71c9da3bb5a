"""Image features of the catalog's samples, cached per (sample, model version).

Main paper (``../shared/papers/sample-repository-label-semantics-visual-retrieval.txt``),
section 3.4.2: every sample is encoded by the multi-scale scene model (Fig. 6);
multispectral samples are first harmonized to three channels (normalize, align bands,
PCA). Section 4.2 finds this step to dominate integration time, so it runs batched from
the Zarr store, reading the next batch while the current one is encoded.

Storage contract (read by the query, ``samplehub.retrieval``): the Delta table
``features`` (partitioned by dataset) holds one row per (``sample_id``, ``model_version``)
with the unit-norm ``vector`` (list<float32>, length D) and ``computed_at``;
:func:`load_features` reads it as faiss-style ``(ids, xb)``. Model version strings are
described in :mod:`samplehub.models.feature_model`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.features import (
    SceneTrainConfig,
    StagePooling,
    compile_encoder,
    create_backbone,
    extract_features,
    train_scene_model,
)
from ml.features.scene_model import SceneTrainResult
from samplehub.bands import to_three_channels
from samplehub.catalog import Catalog, DataFile
from samplehub.catalog.vectors import (
    sample_rows,
    stored_sample_ids,
    vector_column,
    vector_rows,
)
from samplehub.errors import SampleHubError
from samplehub.executors import map_arrow
from samplehub.models.feature_model import (
    FeatureModel,
    check_backbone,
    load_feature_model,
    model_version,
)
from samplehub.models.tracking import artifact_location, registry_failures, tracking_uri
from samplehub.progress import progress_bar
from samplehub.repository import Repository
from samplehub.store import DatasetStore, SampleStore

log = logging.getLogger(__name__)

RGB = ("red", "green", "blue")
PIXEL_COLUMNS = ["sample_id", "bands", "sensor", "zarr_array", "zarr_index"]


def load_features(
    catalog: Catalog, model_version: str, datasets: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The stored features of one model version.

    Args:
        catalog: the catalog holding the ``features`` table.
        model_version: e.g. ``samplehub.models.feature_model.model_version(config)``.
        datasets: only these datasets; None reads every dataset.

    Returns:
        ``ids`` (nb,) int64 sample ids, ascending and unique, and ``xb`` (nb, D) float32
        unit-norm features in the same order; (0,) and (0, 0) when nothing is stored.
    """
    expression = pc.field("model_version") == model_version
    if datasets is not None:
        expression = expression & pc.field("dataset").isin(list(datasets))
    table = catalog.read("features", columns=["sample_id", "vector"], filter_expression=expression)
    ids = table.column("sample_id").to_numpy()
    if not len(ids):
        return ids.astype(np.int64), np.zeros((0, 0), dtype=np.float32)
    xb = vector_rows(table.column("vector"))
    ids, first = np.unique(ids, return_index=True)  # ascending; a duplicate row counts once
    return ids.astype(np.int64), xb[first]


def count_non_finite(catalog: Catalog, model_version: str) -> tuple[int, int]:
    """(stored vectors, vectors holding NaN or infinity) of one model version."""
    _, xb = load_features(catalog, model_version)
    return len(xb), int((~np.isfinite(xb)).any(axis=1).sum()) if xb.size else 0


def feature_ids(catalog: Catalog, dataset: str, model_version: str) -> np.ndarray:
    """Ids of ``dataset`` that already have features of ``model_version`` (int64)."""
    return stored_sample_ids(catalog, "features", dataset, model_version)


def harmonize(images: np.ndarray, band_names: Sequence[str], sensor: str | None) -> np.ndarray:
    """Bring a batch to three channels (paper 3.4.2, band harmonization).

    Args:
        images: (N, C, H, W) at native dtype, all with the same bands.
        band_names: names of the C bands.
        sensor: picks the band mapping of multispectral input.

    Returns:
        uint8 RGB batches unchanged (the extractor scales them to [0, 1]), otherwise
        float32 (N, 3, H, W) in [0, 1] from :func:`samplehub.bands.to_three_channels`.
    """
    if images.dtype == np.uint8 and tuple(b.lower() for b in band_names) == RGB:
        return images
    return np.stack([to_three_channels(image, band_names, sensor) for image in images])


def image_batches(
    store: DatasetStore, rows: pd.DataFrame, batch_size: int
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Harmonized pixels of catalog ``rows``, batch by batch, the next read ahead in a thread.

    Rows are grouped by Zarr array, band list and sensor (one read per array slice, one
    harmonization per band layout); within a group they are read in ``zarr_index`` order.

    Args:
        store: the dataset's Zarr store.
        rows: catalog rows with ``PIXEL_COLUMNS``.
        batch_size: rows per batch (memory bound).

    Yields:
        (the batch's rows, their three-channel images (n, 3, H, W)).
    """
    rows = rows.assign(band_key=rows["bands"].map(tuple), sensor=rows["sensor"].fillna(""))
    batches = [
        group.iloc[start : start + batch_size]
        for _, group in rows.sort_values("zarr_index").groupby(
            ["zarr_array", "band_key", "sensor"], sort=True
        )
        for start in range(0, len(group), batch_size)
    ]

    def read(batch: pd.DataFrame) -> np.ndarray:
        first = batch.iloc[0]
        pixels = store.images(str(first["zarr_array"]), batch["zarr_index"].to_numpy())
        return harmonize(pixels, first["band_key"], first["sensor"] or None)

    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = [reader.submit(read, batches[0])] if batches else []
        for i, batch in enumerate(batches):
            images = pending.pop().result()
            if i + 1 < len(batches):
                pending.append(reader.submit(read, batches[i + 1]))
            yield batch, images


def feature_table(ids: np.ndarray, dataset: str, model_version: str, xb: np.ndarray) -> pa.Table:
    """Rows of the ``features`` table for ``xb`` (n, D) of sample ``ids``."""
    return sample_rows(ids, dataset, model_version, {"vector": vector_column(xb)})


@dataclass
class FeatureReport:
    """What one feature run did.

    Attributes:
        dataset: the dataset.
        model_version: the model version the features belong to.
        total: catalog samples of the dataset.
        computed: samples encoded by this run.
        cached: samples that already had features of this model version.
        seconds: wall time of the run.
    """

    dataset: str
    model_version: str
    total: int = 0
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0

    @property
    def img_per_s(self) -> float:
        """Samples encoded per second (reading, harmonizing, encoding and writing)."""
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def compute_features(
    repo: Repository,
    dataset: str,
    model: FeatureModel | None = None,
    progress: bool = False,
) -> FeatureReport:
    """Encode the dataset's samples that have no features of the model's version yet.

    Reads catalog rows and Zarr pixels batch by batch (``config.executor.batch_size``
    rows), harmonizes bands, encodes (``FeatureModel.encode``: ONNX Runtime or PyTorch per
    ``config.model.runtime`` and ``precision``) and appends each batch to the
    ``features`` table in one Delta commit, so an interrupted run resumes where it stopped
    and a re-run with nothing new computes nothing.

    Args:
        repo: the repository.
        dataset: a catalogued dataset.
        model: the feature model; None loads
            :func:`samplehub.models.feature_model.load_feature_model`
            (only when some sample needs encoding).
        progress: show a progress bar.

    Returns:
        Counts, seconds and throughput of the run.

    Raises:
        DatasetNotFoundError: ``dataset`` is not in the catalog.
    """
    start = time.perf_counter()
    # Two runs of one dataset would both encode the samples neither had stored yet.
    with repo.locks.features(dataset):
        # Part files a killed Spark run's executors wrote and its driver never committed.
        repo.catalog.drop_uncommitted_files("features", dataset)
        rows = repo.catalog.samples(dataset, columns=PIXEL_COLUMNS)
        version = model.version if model is not None else model_version(repo.config)
        todo = rows[~rows["sample_id"].isin(feature_ids(repo.catalog, dataset, version))]
        if len(todo) and model is None:  # load weights only when there is work
            model = load_feature_model(repo.config)
            if model.version != version:  # the alias moved meanwhile
                version = model.version
                stored = feature_ids(repo.catalog, dataset, version)
                todo = rows[~rows["sample_id"].isin(stored)]
        report = FeatureReport(dataset, version, total=len(rows), cached=len(rows) - len(todo))
        store = repo.store.dataset(dataset)
        batch_size = repo.config.executor.batch_size
        if repo.config.executor.kind == "spark" and len(todo):
            assert model is not None  # loaded above: todo is non-empty
            report.computed = features_on_spark(repo, dataset, todo, model)
            report.seconds = time.perf_counter() - start
            return report
        with progress_bar(f"features {dataset}", len(todo), "img", progress) as bar:
            for batch, images in image_batches(store, todo, batch_size):
                # the model is loaded whenever todo is non-empty
                xb = model.encode(images)  # type: ignore[union-attr]
                ids = batch["sample_id"].to_numpy()
                repo.catalog.append("features", feature_table(ids, dataset, version, xb))
                report.computed += len(batch)
                bar.update(len(batch))
                log.info("features %s: %d/%d samples", dataset, report.computed, len(todo))
    report.seconds = time.perf_counter() - start
    return report


@dataclass(frozen=True)
class FeatureTask:
    """Where an executor reads pixels and writes features; pickled to Spark executors."""

    catalog: Catalog
    store: SampleStore
    dataset: str
    batch_size: int


def encode_part(rows: pa.Table, model: FeatureModel, task: FeatureTask) -> DataFile | None:
    """Encode catalog ``rows`` (``PIXEL_COLUMNS``) into one uncommitted ``features`` file.

    What a Spark executor runs: it reads the pixels from the store itself and writes the
    vectors to the catalog's storage; only the file's name and size go back.
    """
    tables = [feature_table(batch["sample_id"].to_numpy(), task.dataset, model.version,
                            model.encode(images))
              for batch, images in image_batches(task.store.dataset(task.dataset),
                                                 rows.to_pandas(), task.batch_size)]
    return task.catalog.write_file("features", task.dataset, pa.concat_tables(tables)) \
        if tables else None


def features_on_spark(
    repo: Repository, dataset: str, todo: pd.DataFrame, model: FeatureModel
) -> int:
    """Encode ``todo`` on Spark executors and commit their files in one transaction.

    The model is broadcast (one copy per executor), each task encodes with one thread
    (its core; the cluster's parallelism is its cores), and the driver never holds
    pixels or vectors. A run killed before the commit leaves nothing committed, so a
    re-run encodes the same samples again.

    Returns:
        The number of samples encoded.
    """
    task = FeatureTask(repo.catalog, repo.store, dataset, repo.config.executor.batch_size)
    one_core = replace(model, settings=replace(model.settings, threads=1))
    rows = pa.Table.from_pandas(todo[PIXEL_COLUMNS], preserve_index=False)
    files = map_arrow(partial(encode_part, task=task), rows, one_core, repo.config.executor,
                      rows_per_part=task.batch_size)
    repo.catalog.commit_files("features", [f for f in files if f is not None])
    return len(todo)


def train_registered_scene_model(
    repo: Repository,
    dataset: str | None = None,
    train_config: SceneTrainConfig | None = None,
    progress: bool = False,
) -> SceneTrainResult:
    """Train the multi-label scene model on a dataset's catalog rows, register and promote it.

    Pools the backbone stages of every labelled sample once (harmonized as for feature
    extraction), trains the fusion head and classifier with BCE + the pair term
    (:func:`ml.features.train_scene_model`, paper 3.4.2), logs the run to the home's
    MLflow store, registers it as ``config.model.registered_model`` and points
    ``config.model.alias`` at the new version, so the next feature run uses it (under
    the new model version string).

    Args:
        repo: the repository.
        dataset: the multi-label dataset; None uses ``config.model.train_dataset``.
        train_config: hyperparameters; None uses ``config.model.train`` with
            ``dim = config.model.dim``.
        progress: show a progress bar while pooling.

    Returns:
        The trained model, its history, run id and registered version.

    Raises:
        SampleHubError: the dataset has no labelled samples.
        ModelRegistryError: the tracking store failed; the alias was not moved.
    """
    from mlflow import MlflowClient

    config = repo.config
    check_backbone(config.model)
    name = dataset or config.model.train_dataset
    rows = repo.catalog.samples(name, columns=[*PIXEL_COLUMNS, "labels"])
    rows = rows[rows["labels"].map(len) > 0].reset_index(drop=True)
    if rows.empty:
        raise SampleHubError(
            f"dataset {name!r} has no labelled samples to train the scene model on; ingest a "
            "multi-label dataset or set model.train_dataset"
        )
    label_names = sorted({label for labels in rows["labels"] for label in labels})
    column = {label: i for i, label in enumerate(label_names)}
    Y = np.zeros((len(rows), len(label_names)), dtype=np.float32)
    for i, labels in enumerate(rows["labels"]):
        Y[i, [column[label] for label in labels]] = 1.0
    pooling = StagePooling(create_backbone())
    pool = compile_encoder(
        pooling,
        config.model.runtime,  # type: ignore[arg-type]
        precision=config.model.precision,  # type: ignore[arg-type]
        resolution=config.model.resolution,
        num_threads=config.model.threads or None,
    )
    xt = np.zeros((len(rows), sum(pooling.stage_channels)), dtype=np.float32)
    store = repo.store.dataset(name)
    with progress_bar(f"pooling {name}", len(rows), "img", progress) as bar:
        for batch, images in image_batches(store, rows, config.executor.batch_size):
            xt[batch.index.to_numpy()] = extract_features(
                pool,
                images,
                batch_size=config.model.batch_size,
                num_threads=config.model.threads or None,
                precision=config.model.precision,  # type: ignore[arg-type]
                resolution=config.model.resolution,
            )
            bar.update(len(batch))
    with registry_failures(config, config.model.registered_model, config.model.alias):
        result = train_scene_model(
            xt,
            Y,
            pooling.stage_channels,
            train_config or SceneTrainConfig(dim=config.model.dim, **asdict(config.model.train)),
            label_names=label_names,
            tracking_uri=tracking_uri(config),
            artifact_location=artifact_location(config),
            registered_model_name=config.model.registered_model,
        )
        MlflowClient(tracking_uri=tracking_uri(config)).set_registered_model_alias(
            config.model.registered_model, config.model.alias, str(result.model_version)
        )
    return result
