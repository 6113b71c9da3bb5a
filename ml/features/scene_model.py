"""Multi-label scene model that trains the multi-scale fusion head (main paper, 3.4.2, Fig. 6).

Section 3.4.2 of ``../shared/papers/sample-repository-label-semantics-visual-retrieval.txt``
fine-tunes the feature extractor on multi-label data (MLRSNet there; UC Merced multi-label
here) with binary cross-entropy, and adds a pair term: "the labels of multi-label samples
are represented as one-hot vectors, and a weight matrix is constructed based on the
similarity of the vectors. Image pairs with more shared labels are assigned higher weights
... the model minimizes the distance between similar label samples in the feature space."
The paper gives no equation for it; SampleHub uses this one (symbols -> variables):

* labels ``y_i`` in {0,1}^L (``Y``); features ``z_i`` = fusion-head output, unit norm (``z``);
* weight matrix ``S_ij = |y_i AND y_j| / |y_i OR y_j|`` (Jaccard; :func:`label_similarity`),
  which grows with the number of shared labels and is 1 for identical label sets;
* distance ``d_ij = ||z_i - z_j||_2`` in [0, 2];
* pair loss (:func:`pair_loss`), over pairs i != j of a batch::

      L_pair = sum S_ij d_ij^2 / sum S_ij
             + sum [S_ij = 0] max(0, m - d_ij)^2 / sum [S_ij = 0]

  The first term is the paper's weighted pull; the second, a hinge on pairs sharing no
  label with margin ``m``, keeps the features from collapsing to one point (the paper's
  BCE term alone does not prevent that in the shared feature space);
* total (:func:`scene_loss`): ``L = L_BCE(logits, y) + lambda * L_pair`` with
  ``lambda = pair_weight``.

By default training runs on cached pooled backbone stages (:class:`StagePooling` output),
so only the fusion head and the classifier learn and an epoch takes seconds on a CPU.
Runs are tracked in MLflow when a tracking URI is given (SampleHub's default is SQLite,
``sqlite:///<home>/mlflow.db``) and the model is registered.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.features.multiscale import DEFAULT_DIM, FusionHead
from ml.metrics import mean_average_precision, relevance

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "scene_model"
LOGIT_SCALE_INIT = 10.0


class SceneModel(nn.Module):
    """Fusion head plus a multi-label classifier over its features.

    Args:
        stage_channels: channels of each pooled backbone stage (``StagePooling``).
        n_labels: number of labels L.
        dim: feature dimension D.
        seed: seed of the head's initialisation.
    """

    def __init__(
        self, stage_channels: Sequence[int], n_labels: int, dim: int = DEFAULT_DIM, seed: int = 0
    ) -> None:
        super().__init__()
        self.head = FusionHead(stage_channels, dim, seed)
        self.classifier = nn.Linear(dim, n_labels)
        self.log_scale = nn.Parameter(torch.tensor(math.log(LOGIT_SCALE_INIT)))

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled stages (N, C) -> unit-norm features z (N, D) and label logits (N, L).

        The classifier reads ``z`` times a learned scale (initially ``LOGIT_SCALE_INIT``):
        unit-norm inputs alone keep logits too small for BCE to fit.
        """
        z = self.head(pooled)
        return z, self.classifier(z * self.log_scale.exp())


def label_similarity(Y: torch.Tensor) -> torch.Tensor:
    """Pair weight matrix S of multi-hot labels: Jaccard index ``|y_i & y_j| / |y_i | y_j|``.

    Args:
        Y: multi-hot labels (B, L), 0/1.

    Returns:
        S (B, B) in [0, 1]; 0 where both label sets are empty.
    """
    Y = Y.float()
    shared = Y @ Y.T
    counts = Y.sum(dim=1)
    union = counts[:, None] + counts[None, :] - shared
    return torch.where(union > 0, shared / union.clamp_min(1.0), torch.zeros_like(shared))


def pair_loss(z: torch.Tensor, Y: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Label-similarity-weighted pair loss L_pair (module docstring; paper 3.4.2).

    Args:
        z: unit-norm features (B, D).
        Y: multi-hot labels (B, L).
        margin: hinge margin m on the distance of pairs sharing no label.

    Returns:
        Scalar loss; 0 for a batch of one.
    """
    S = label_similarity(Y)
    off_diag = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    d2 = (2.0 - 2.0 * (z @ z.T)).clamp_min(0.0)
    pull_w = S * off_diag
    push_w = ((S == 0) & off_diag).float()
    pull = (pull_w * d2).sum() / pull_w.sum().clamp_min(1e-12)
    push = (push_w * F.relu(margin - d2.clamp_min(1e-12).sqrt()) ** 2).sum()
    return pull + push / push_w.sum().clamp_min(1.0)


def scene_loss(
    z: torch.Tensor,
    logits: torch.Tensor,
    Y: torch.Tensor,
    pair_weight: float = 1.0,
    margin: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total loss ``L_BCE + pair_weight * L_pair`` (paper 3.4.2).

    Args:
        z: unit-norm features (B, D).
        logits: label logits (B, L).
        Y: multi-hot labels (B, L).
        pair_weight: lambda, the weight of the pair term.
        margin: hinge margin of the pair term.

    Returns:
        (total, bce, pair) scalars.
    """
    bce = F.binary_cross_entropy_with_logits(logits, Y.float())
    pair = pair_loss(z, Y, margin)
    return bce + pair_weight * pair, bce, pair


@dataclass(frozen=True)
class SceneTrainConfig:
    """Hyperparameters of :func:`train_scene_model` (logged to MLflow as params)."""

    dim: int = DEFAULT_DIM
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    pair_weight: float = 1.0
    margin: float = 1.0
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class SceneTrainResult:
    """A trained scene model, its per-epoch history and, if tracked, its MLflow identity."""

    model: SceneModel
    history: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None
    model_uri: str | None = None
    model_version: str | None = None


def evaluate_scene_model(
    model: SceneModel,
    xq: np.ndarray,
    Yq: np.ndarray,
    xb: np.ndarray | None = None,
    Yb: np.ndarray | None = None,
) -> dict[str, float]:
    """BCE, classification mAP and retrieval mAP of ``model`` on held-out data.

    Args:
        model: the scene model.
        xq: pooled stages of the evaluation images (nq, C).
        Yq: their multi-hot labels (nq, L).
        xb: pooled stages of a retrieval database (nb, C); None skips retrieval mAP.
        Yb: the database's labels (nb, L).

    Returns:
        ``{"bce", "label_map", "retrieval_map"}``: label_map is the macro average precision
        of the logits over labels with a positive; retrieval_map is mAP over the whole
        database ranked by cosine distance, relevance = at least one shared label
        (``ml.metrics``).
    """
    from sklearn.metrics import average_precision_score

    model.eval()
    with torch.inference_mode():
        zq, logits = model(torch.as_tensor(xq, dtype=torch.float32))
        y = torch.as_tensor(Yq, dtype=torch.float32)
        metrics = {"bce": float(F.binary_cross_entropy_with_logits(logits, y))}
        present = Yq.sum(axis=0) > 0
        metrics["label_map"] = float(
            average_precision_score(Yq[:, present], logits.numpy()[:, present], average="macro")
        )
        if xb is not None and Yb is not None:
            zb, _ = model(torch.as_tensor(xb, dtype=torch.float32))
            D = (1.0 - zq @ zb.T).numpy()
            metrics["retrieval_map"] = mean_average_precision(D, relevance(Yq, Yb))
    return metrics


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation row split."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * val_fraction)
    return order[n_val:], order[:n_val]


def _train_epoch(
    model: SceneModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    Y: torch.Tensor,
    config: SceneTrainConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass over shuffled mini-batches; returns mean total/BCE/pair losses."""
    model.train()
    order = torch.randperm(len(x), generator=generator)
    sums = {"loss": 0.0, "bce": 0.0, "pair": 0.0}
    n_batches = math.ceil(len(x) / config.batch_size)
    for b in range(n_batches):
        rows = order[b * config.batch_size : (b + 1) * config.batch_size]
        z, logits = model(x[rows])
        total, bce, pair = scene_loss(z, logits, Y[rows], config.pair_weight, config.margin)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        for key, value in zip(sums, (total, bce, pair), strict=True):
            sums[key] += value.item() / n_batches
    return sums


def train_scene_model(
    xt: np.ndarray,
    Y: np.ndarray,
    stage_channels: Sequence[int],
    config: SceneTrainConfig | None = None,
    *,
    label_names: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    artifact_location: str | Path | None = None,
    registered_model_name: str | None = None,
) -> SceneTrainResult:
    """Train the scene model on cached pooled backbone stages (paper 3.4.2, Fig. 6).

    From images, compute the cache once with
    ``xt = extract_features(StagePooling(create_backbone()), images)``; afterwards
    ``build_multiscale_encoder(head=result.model.head)`` encodes images with the trained
    head (or ``head=load_scene_model("models:/<name>/<version>").head``).

    Args:
        xt: pooled stages (N, C) from ``StagePooling``, C = sum(stage_channels).
        Y: multi-hot labels (N, L).
        stage_channels: the pooling's ``stage_channels``.
        config: hyperparameters; None uses the defaults.
        label_names: the L label names, logged with the run.
        tracking_uri: MLflow tracking URI, e.g. ``sqlite:///<home>/mlflow.db``; None trains
            without tracking.
        experiment: MLflow experiment name.
        artifact_location: where a new experiment stores artifacts (e.g. ``<home>/mlartifacts``);
            None lets MLflow choose.
        registered_model_name: register the trained model under this name (needs
            ``tracking_uri``).

    Returns:
        The model, per-epoch history (``epoch``, ``train_loss``, ``train_bce``,
        ``train_pair`` and, with a validation split, ``val_bce``, ``val_label_map``,
        ``val_retrieval_map``), and the MLflow run id, model URI and registered version.

    Raises:
        ValueError: on mismatched shapes, non-binary labels, or registering without tracking.
    """
    config = config or SceneTrainConfig()
    xt = np.asarray(xt, dtype=np.float32)
    Y = np.asarray(Y)
    if xt.ndim != 2 or Y.ndim != 2 or len(xt) != len(Y):
        raise ValueError(f"expected xt (N, C) and Y (N, L); got {xt.shape} and {Y.shape}")
    if not np.isin(Y, (0, 1)).all():
        raise ValueError("Y must be multi-hot (0/1 values only)")
    if label_names is not None and len(label_names) != Y.shape[1]:
        raise ValueError(f"{len(label_names)} label_names for {Y.shape[1]} label columns")
    if registered_model_name and not tracking_uri:
        raise ValueError("registered_model_name needs a tracking_uri")
    Y = Y.astype(np.float32)
    train_rows, val_rows = _split(len(xt), config.val_fraction, config.seed)
    torch.manual_seed(config.seed)
    model = SceneModel(stage_channels, Y.shape[1], config.dim, config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    x_train, y_train = torch.from_numpy(xt[train_rows]), torch.from_numpy(Y[train_rows])
    result = SceneTrainResult(model)
    with _mlflow_run(tracking_uri, experiment, artifact_location) as mlflow:
        if mlflow is not None:
            mlflow.log_params(
                {
                    **asdict(config),
                    "n_train": len(train_rows),
                    "n_val": len(val_rows),
                    "n_labels": Y.shape[1],
                    "stage_channels": list(stage_channels),
                }
            )
            if label_names is not None:
                mlflow.log_dict({"labels": list(label_names)}, "labels.json")
        for epoch in range(config.epochs):
            losses = _train_epoch(model, optimizer, x_train, y_train, config, generator)
            row = {"epoch": float(epoch), **{f"train_{k}": v for k, v in losses.items()}}
            if len(val_rows):
                val = evaluate_scene_model(
                    model, xt[val_rows], Y[val_rows], xt[train_rows], Y[train_rows]
                )
                row.update({f"val_{k}": v for k, v in val.items()})
            result.history.append(row)
            log.info("scene model epoch %d: %s", epoch, row)
            if mlflow is not None:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        model.eval()
        if mlflow is not None:
            info = mlflow.pytorch.log_model(
                model,
                name="scene_model",
                registered_model_name=registered_model_name,
                serialization_format="pickle",  # load_scene_model returns a SceneModel
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            result.run_id = mlflow.active_run().info.run_id
            result.model_uri = info.model_uri
            if registered_model_name:
                version = info.registered_model_version
                result.model_version = str(version)
                result.model_uri = f"models:/{registered_model_name}/{version}"
    return result


@contextlib.contextmanager
def _mlflow_run(
    tracking_uri: str | None, experiment: str, artifact_location: str | Path | None
) -> Iterator[ModuleType | None]:
    """An active MLflow run, yielding the ``mlflow`` module; None when not tracking."""
    if tracking_uri is None:
        yield None
        return
    import mlflow
    import mlflow.pytorch

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = None
        if artifact_location is not None:
            location = Path(artifact_location).resolve().as_uri()
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        yield mlflow


def load_scene_model(model_uri: str, tracking_uri: str | None = None) -> SceneModel:
    """Load a logged or registered scene model, e.g. ``models:/scene_model/3``.

    Args:
        model_uri: an MLflow model URI (``runs:/...``, ``models:/name/version``).
        tracking_uri: the tracking URI the model was logged to; None keeps MLflow's current.

    Returns:
        The scene model in eval mode; ``model.head`` plugs into ``build_multiscale_encoder``.

    Raises:
        TypeError: if the URI holds something other than a :class:`SceneModel`.
    """
    import mlflow.pytorch

    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    if not isinstance(model, SceneModel):
        raise TypeError(f"{model_uri} holds a {type(model).__name__}, not a SceneModel")
    return model.eval()
