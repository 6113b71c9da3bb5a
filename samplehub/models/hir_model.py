"""HIR's two networks in the repository: train TKANet and ESFormer, track, promote, load.

Paper: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``.

* **TKANet** (section II.B, Table I) trains on ``config.hir.tkanet_dataset`` (UC Merced by
  default) with each sample's first catalog label as its class, after the merges of
  ``hir.merge_labels`` (the paper merges the three residential densities, so the
  networks never see them).
* **ESFormer** (section II.C) trains on ``config.hir.esformer_dataset`` (UC Merced's
  17-class multi-label annotation by default). The supervision is **weak**: image-level
  multi-label BCE on the class-activation maps (:func:`ml.hir.train.train_esformer`), since
  no pixel-labelled land cover exists offline. The class names are the sorted labels of
  that dataset, stored on the run as the ``classes`` tag.

A seeded ``hir.val_fraction`` of the training images picks the best epoch (validation mAP,
``val_map``). Runs are logged to the configured MLflow store (experiment ``hir``: params,
per-epoch metrics, the model) and registered as ``tkanet`` / ``esformer``; the alias
``hir.alias`` moves only when the new run's ``val_map`` beats the champion's
(:func:`ml.hashing.train.promote_if_better`). The served ESFormer's version string is
``esformer-v<registered version>``; it keys the ``landcover_stats`` table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.hashing.train import (
    MODEL_URI_TAG,
    VAL_METRIC,
    RegistryError,
    TrainResult,
    promote_if_better,
)
from ml.hir.train import (
    ESFormerTrainConfig,
    LandcoverPrediction,
    TKANetTrainConfig,
    predict_landcover,
    train_esformer,
    train_tkanet,
)
from samplehub.config import SampleHubConfig
from samplehub.errors import (
    ConfigError,
    IndexNotTrainedError,
    ModelRegistryError,
    SampleHubError,
    without_credentials,
)
from samplehub.models.tracking import (
    artifact_location,
    has_tracking_store,
    registry_failures,
    tracking_uri,
)
from samplehub.progress import progress_bar
from samplehub.repository import ModelCache, Repository

log = logging.getLogger(__name__)

EXPERIMENT = "hir"
TKANET = "tkanet"
ESFORMER = "esformer"
CLASSES_TAG = "classes"
DATASET_TAG = "dataset"
IMAGE_COLUMNS = ["sample_id", "bands", "sensor", "zarr_array", "zarr_index", "labels"]


def resize_uint8(images: np.ndarray, side: int) -> np.ndarray:
    """Harmonized images (uint8, or float in [0, 1]) (n, 3, H, W) -> uint8 (n, 3, side, side)."""
    x = torch.as_tensor(np.asarray(images)).float()
    if images.dtype != np.uint8:
        x = x * 255.0
    if x.shape[-2:] != (side, side):
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                          antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def check_resolution(side: int) -> int:
    """``hir.resolution`` if ESFormer can take it (a multiple of 64).

    Raises:
        ConfigError: another value.
    """
    if side < 64 or side % 64:
        raise ConfigError(f"hir.resolution={side}: use a multiple of 64 (ESFormer's windows)")
    return side


def dataset_images(
    repo: Repository, dataset: str, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """The labelled samples of ``dataset`` at ``hir.resolution``.

    Returns:
        Sample ids (n,), uint8 images (n, 3, R, R) and each sample's labels, in catalog
        order; at most ``hir.max_train_samples`` samples (a seeded pick).
    """
    from samplehub.feature_store import image_batches

    h = repo.config.hir
    side = check_resolution(h.resolution)
    rows = repo.catalog.samples(dataset, columns=IMAGE_COLUMNS)
    rows = rows[rows["labels"].map(len) > 0].reset_index(drop=True)
    if h.max_train_samples is not None and len(rows) > h.max_train_samples:
        keep = np.random.default_rng(0).choice(len(rows), h.max_train_samples, replace=False)
        rows = rows.iloc[np.sort(keep)].reset_index(drop=True)
    images = np.zeros((len(rows), 3, side, side), np.uint8)
    store = repo.store.dataset(dataset)
    with progress_bar(f"hir images {dataset}", len(rows), "img", progress) as bar:
        for batch, pixels in image_batches(store, rows, repo.config.executor.batch_size):
            images[batch.index.to_numpy()] = resize_uint8(pixels, side)
            bar.update(len(batch))
    return rows["sample_id"].to_numpy(), images, [list(ls) for ls in rows["labels"]]


def holdout(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (training rows, validation rows) with ``round(fraction n)`` (>= 1) held out."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass(frozen=True)
class HirTraining:
    """One tracked HIR training run and the promotion decision.

    Attributes:
        model_name: ``tkanet`` or ``esformer``.
        run_id: the MLflow run.
        version: the registered version.
        promoted: whether the alias now points at it.
        alias: the registry alias.
        val_map: its validation mAP.
        champion_map: the previous champion's, None if there was none.
        dataset: the training dataset.
        samples: training images (validation excluded).
        supervision: what the labels were, in words.
    """

    model_name: str
    run_id: str
    version: str
    promoted: bool
    alias: str
    val_map: float
    champion_map: float | None
    dataset: str
    samples: int
    supervision: str


def train_tkanet_model(repo: Repository, progress: bool = False) -> HirTraining:
    """Train TKANet on ``hir.tkanet_dataset``'s scene labels, track it, promote if better.

    Raises:
        SampleHubError: fewer than two classes to train on.
        ModelRegistryError: the registry failed while the champion was read.
    """
    h = repo.config.hir
    _, images, labels = dataset_images(repo, h.tkanet_dataset, progress)
    names = [h.merge_labels.get(ls[0], ls[0]) for ls in labels]
    classes = sorted(set(names))
    if len(classes) < 2:
        raise SampleHubError(
            f"dataset {h.tkanet_dataset!r} has {len(classes)} labelled classes; TKANet needs two "
            "or more: set hir.tkanet_dataset to a labelled scene dataset"
        )
    y = np.array([classes.index(n) for n in names])
    t, v = holdout(len(y), h.val_fraction)
    config = TKANetTrainConfig(epochs=h.tkanet_epochs, batch_size=min(h.batch_size, len(t)),
                               lr=h.tkanet_lr)
    result = train_tkanet(images[t], y[t], config, val=(images[v], y[v], images[t], y[t]),
                          val_topk=min(20, len(t)))
    supervision = "scene labels (first catalog label, hir.merge_labels applied)"
    return _track_and_promote(repo, TKANET, result, h.tkanet_dataset, len(t), supervision,
                              {CLASSES_TAG: json.dumps(classes)})


def train_esformer_model(repo: Repository, progress: bool = False) -> HirTraining:
    """Train ESFormer weakly on ``hir.esformer_dataset``'s image labels; track, promote.

    Raises:
        SampleHubError: fewer than two land-cover classes.
        ModelRegistryError: the registry failed while the champion was read.
    """
    h = repo.config.hir
    _, images, labels = dataset_images(repo, h.esformer_dataset, progress)
    classes = sorted({label for ls in labels for label in ls})
    if len(classes) < 2:
        raise SampleHubError(
            f"dataset {h.esformer_dataset!r} has {len(classes)} labels; ESFormer needs a "
            "multi-label land-cover dataset: set hir.esformer_dataset"
        )
    Y = np.zeros((len(labels), len(classes)), np.float32)
    for i, ls in enumerate(labels):
        Y[i, [classes.index(label) for label in ls]] = 1.0
    t, v = holdout(len(Y), h.val_fraction)
    config = ESFormerTrainConfig(epochs=h.esformer_epochs, batch_size=min(h.batch_size, len(t)),
                                 lr=h.esformer_lr)
    result = train_esformer(images[t], Y[t], config, val=(images[v], Y[v]))
    supervision = ("weak: image-level multi-label BCE on class-activation maps (no pixel "
                   "labels); encoder frozen ImageNet EfficientNet-Lite0")
    return _track_and_promote(repo, ESFORMER, result, h.esformer_dataset, len(t), supervision,
                              {CLASSES_TAG: json.dumps(classes)})


def _track_and_promote(
    repo: Repository,
    name: str,
    result: TrainResult,
    dataset: str,
    samples: int,
    supervision: str,
    tags: dict[str, str],
) -> HirTraining:
    """Log ``result`` to MLflow (experiment ``hir``), register ``name``, promote if better."""
    import mlflow

    if result.final_map is None:
        raise SampleHubError(f"{name} training produced no validation mAP to compare")
    config = repo.config
    uri = tracking_uri(config)
    with registry_failures(config, name, config.hir.alias):
        _ensure_experiment(config)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name=f"{name}-{dataset}") as run:
            mlflow.log_params({k: str(v) for k, v in result.params.items()})
            for row in result.history:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"},
                                   step=int(row["epoch"]))
            mlflow.log_metric(VAL_METRIC, result.final_map)
            mlflow.set_tags({**tags, DATASET_TAG: dataset, "supervision": supervision,
                             "paper": "hir-hierarchical-retrieval-tkanet-esformer"})
            mlflow.set_tag(MODEL_URI_TAG, _log_model(result.model, config.hir.resolution))
            run_id = str(run.info.run_id)
        try:
            promotion = promote_if_better(run_id, tracking_uri=uri, model_name=name,
                                          alias=config.hir.alias)
        except RegistryError as exc:
            raise ModelRegistryError(
                f"{name}@{config.hir.alias} could not be read from the MLflow registry at "
                f"{without_credentials(uri)}, so run {run_id} was neither registered nor "
                f"promoted: {exc}. Repair the store and train again"
            ) from exc
    log.info("%s run %s: val mAP %.4f, promoted=%s", name, run_id, promotion.new_map,
             promotion.promoted)
    return HirTraining(name, run_id, promotion.version, promotion.promoted, config.hir.alias,
                       promotion.new_map, promotion.champion_map, dataset, samples, supervision)


def _log_model(model: nn.Module, side: int) -> str:
    """Log an image model (pickle format, (-1, 3, side, side) input); return its model URI."""
    import mlflow.pytorch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    spec = Schema([TensorSpec(np.dtype(np.float32), (-1, 3, side, side), "images")])
    info = mlflow.pytorch.log_model(
        model, name="model", signature=ModelSignature(inputs=spec),
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    return str(info.model_uri)


def _ensure_experiment(config: SampleHubConfig) -> None:
    """Create the ``hir`` experiment at :func:`~.tracking.artifact_location`."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(config))
    if client.get_experiment_by_name(EXPERIMENT) is None:
        location = artifact_location(config)
        client.create_experiment(EXPERIMENT,
                                 artifact_location=location.as_uri() if location else None)


@dataclass
class LandcoverModel:
    """The champion ESFormer.

    Attributes:
        version: registered version.
        classes: land-cover class names, the columns of its statistics.
        net: the network (eval mode, CPU).
        resolution: its input side.
        proportions: ``soft`` or ``hard`` statistics.
    """

    version: str
    classes: list[str]
    net: nn.Module
    resolution: int
    proportions: str

    @property
    def model_version(self) -> str:
        """``esformer-v<version>``: the key of its statistics."""
        return f"{ESFORMER}-v{self.version}"

    def predict(self, images: np.ndarray, batch_size: int = 32) -> LandcoverPrediction:
        """Statistics and image scores of harmonized images (n, 3, H, W)."""
        pixels = resize_uint8(images, self.resolution)
        return predict_landcover(self.net, pixels, batch_size)  # type: ignore[arg-type]

    def proportions_of(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Land-cover statistics (n, C) float32 of harmonized images (``hir.proportions``)."""
        prediction = self.predict(images, batch_size)
        return prediction.proportions(self.proportions)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Champion:
    """Registry facts of a champion without its weights: name, version and run tags."""

    name: str
    version: str
    tags: dict[str, str]


def champion(config: SampleHubConfig, name: str) -> Champion | None:
    """The champion of ``tkanet`` or ``esformer`` under ``hir.alias``, or None (no weights)."""
    if not has_tracking_store(config):
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(config))
    try:
        found = client.get_model_version_by_alias(name, config.hir.alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    tags = dict(client.get_run(found.run_id).data.tags) if found.run_id else {}
    return Champion(name, str(found.version), tags)


def landcover_classes(config: SampleHubConfig) -> tuple[str, list[str]]:
    """(model version, class names) of the champion ESFormer, without loading it.

    Raises:
        IndexNotTrainedError: no champion yet.
    """
    found = champion(config, ESFORMER)
    if found is None:
        raise IndexNotTrainedError(
            f"no registered {ESFORMER}@{config.hir.alias} in {tracking_uri(config)}; "
            "materialize the esformer_model asset"
        )
    return f"{ESFORMER}-v{found.version}", list(json.loads(found.tags.get(CLASSES_TAG, "[]")))


def load_landcover_model(
    config: SampleHubConfig, models: ModelCache | None = None
) -> LandcoverModel:
    """The champion ESFormer, loaded once per version into ``models`` (or for this call).

    Raises:
        IndexNotTrainedError: no champion yet.
    """
    version, classes = landcover_classes(config)
    number = version.rsplit("-v", 1)[1]

    def load() -> LandcoverModel:
        import mlflow.pytorch

        mlflow.set_tracking_uri(tracking_uri(config))
        net = mlflow.pytorch.load_model(f"models:/{ESFORMER}/{number}", map_location="cpu")
        return LandcoverModel(number, classes, net.eval(), config.hir.resolution,
                              config.hir.proportions)

    return load() if models is None else models.get("landcover", version, load)


def describe(training: HirTraining) -> dict[str, Any]:
    """The training run's facts as plain values (asset metadata)."""
    return {
        "run_id": training.run_id, "registered_model": training.model_name,
        "version": training.version, "val_map": round(training.val_map, 4),
        "champion_map": "none" if training.champion_map is None
        else round(training.champion_map, 4),
        "promoted": "yes" if training.promoted else "no", "alias": training.alias,
        "dataset": training.dataset, "samples": training.samples,
        "supervision": training.supervision,
    }
