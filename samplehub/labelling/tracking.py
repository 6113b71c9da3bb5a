"""MLflow tracking of the labelling networks: experiment ``labelling``, one model per dataset.

Each training run logs its parameters, per-epoch losses, the device that trained it and the
network (pickle format), and registers it as ``labelling-unet-<dataset>`` or
``labelling-gnn-<dataset>``. The alias (``labelling.alias``) moves to every new version: a
network is fitted to its dataset's chips and fuzzy C-means targets of that run, so an older
version's validation loss is not comparable with the new one's. The downstream stages load
the network behind the alias.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from samplehub.config import SampleHubConfig
from samplehub.errors import IndexNotTrainedError
from samplehub.models.tracking import (
    artifact_location,
    has_tracking_store,
    registry_failures,
    tracking_uri,
)
from samplehub.repository import ModelCache

log = logging.getLogger(__name__)

EXPERIMENT = "labelling"
PAPER_TAG = "unsupervised-labelling-cnn-gnn"


def model_name(kind: str, dataset: str) -> str:
    """Registered name of the ``unet`` or ``gnn`` of ``dataset``."""
    return f"labelling-{kind}-{dataset}"


@dataclass(frozen=True)
class TrackedModel:
    """A registered labelling network.

    Attributes:
        name: registered model name.
        version: registered version.
        run_id: the MLflow run.
        alias: the alias now pointing at it.
    """

    name: str
    version: str
    run_id: str
    alias: str

    @property
    def model_version(self) -> str:
        """``<name>-v<version>``: what the stages downstream record."""
        return f"{self.name}-v{self.version}"


def track_and_register(
    config: SampleHubConfig,
    name: str,
    model: nn.Module,
    params: dict[str, object],
    history: list[dict[str, float]],
    metrics: dict[str, float],
    tags: dict[str, str],
) -> TrackedModel:
    """Log a training run to experiment ``labelling``, register ``name``, move the alias.

    Raises:
        ModelRegistryError: the tracking store failed or refused a request; the alias
            was not moved.
    """
    import mlflow
    import mlflow.pytorch

    uri = tracking_uri(config)
    client = mlflow.MlflowClient(tracking_uri=uri)
    with registry_failures(config, name, config.labelling.alias):
        if client.get_experiment_by_name(EXPERIMENT) is None:
            location = artifact_location(config)
            client.create_experiment(EXPERIMENT,
                                     artifact_location=location.as_uri() if location else None)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({k: str(v) for k, v in params.items()})
            for row in history:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"},
                                   step=int(row["epoch"]))
            mlflow.log_metrics(metrics)
            mlflow.set_tags({**tags, "paper": PAPER_TAG})
            info = mlflow.pytorch.log_model(
                model, name="model", serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            run_id = str(run.info.run_id)
        version = str(mlflow.register_model(str(info.model_uri), name).version)
        client.set_registered_model_alias(name, config.labelling.alias, version)
    log.info("%s v%s (run %s) is now @%s", name, version, run_id, config.labelling.alias)
    return TrackedModel(name, version, run_id, config.labelling.alias)


def champion(config: SampleHubConfig, name: str) -> TrackedModel:
    """The registered version behind ``labelling.alias``.

    Raises:
        IndexNotTrainedError: nothing registered under that name and alias.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    alias = config.labelling.alias
    missing = IndexNotTrainedError(
        f"no registered {name}@{alias} in {tracking_uri(config)}; materialize the "
        f"{name.split('-')[1]}_model asset of this dataset"
    )
    if not has_tracking_store(config):
        raise missing
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(config))
    try:
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise missing from exc
        raise
    return TrackedModel(name, str(found.version), str(found.run_id), alias)


def load_champion(
    config: SampleHubConfig, name: str, models: ModelCache | None = None
) -> tuple[TrackedModel, nn.Module]:
    """The champion's registry facts and its network (eval mode, CPU), loaded once per version.

    Raises:
        IndexNotTrainedError: nothing registered under that name and alias.
    """
    import mlflow.pytorch

    found = champion(config, name)

    def load() -> nn.Module:
        mlflow.set_tracking_uri(tracking_uri(config))
        net = mlflow.pytorch.load_model(f"models:/{name}/{found.version}", map_location="cpu")
        return net.eval()  # type: ignore[no-any-return]

    net = load() if models is None else models.get("labelling", found.model_version, load)
    return found, net
