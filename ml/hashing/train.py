"""Training loops for DMCH and DUWH on cached backbone features, plus MLflow tracking.

Both loops run on CPU over feature arrays ``xt`` (nt, d) and return a :class:`TrainResult`
with one history row per epoch (mean loss terms and, when an :class:`EvalSet` is given,
the validation mAP of Hamming ranking). :func:`track_run` logs a result to MLflow (params,
per-epoch metrics, the model, a retrieval-metrics JSON) and registers the model;
:func:`promote_if_better` moves the ``champion`` alias only when the new version beats the
current champion on validation mAP, and raises :class:`RegistryError` rather than promote
when the champion cannot be read.

Papers: ``../shared/papers/dmch-deep-metric-category-hashing.txt`` (Sec. 4.2 settings) and
``../shared/papers/duwh-deep-unsupervised-weighted-hashing.txt`` ("Datasets and Settings").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.hashing import dmch, duwh
from ml.metrics import mean_average_precision, relevance

log = logging.getLogger(__name__)

VAL_METRIC = "val_map"
MODEL_URI_TAG = "model_uri"


class RegistryError(RuntimeError):
    """The MLflow registry failed while the champion was read, so promotion stopped."""


@dataclass
class EvalSet:
    """Validation protocol: queries against a database, mAP@topk of Hamming ranking.

    Attributes:
        xq: query features (nq, d).
        yq: query labels, class ids (nq,) or label matrix (nq, C).
        xb: database features (nb, d).
        yb: database labels.
        topk: R of mAP@R; None ranks the whole database.
    """

    xq: np.ndarray
    yq: np.ndarray
    xb: np.ndarray
    yb: np.ndarray
    topk: int | None = None
    rel: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Precompute the (nq, nb) relevance matrix once."""
        self.rel = relevance(self.yq, self.yb)


@dataclass
class TrainResult:
    """Outcome of a training loop.

    Attributes:
        model: the trained network (eval mode, CPU).
        history: one dict per epoch: ``epoch``, mean loss terms, ``loss`` and ``map`` when
            evaluated.
        params: hyper-parameters of the run, for logging.
    """

    model: nn.Module
    history: list[dict[str, float]]
    params: dict[str, Any]

    @property
    def final_map(self) -> float | None:
        """Validation mAP of the last evaluated epoch, None if never evaluated."""
        maps = [row["map"] for row in self.history if "map" in row]
        return maps[-1] if maps else None


def _check_features(x: np.ndarray, name: str) -> torch.Tensor:
    """Features as a float32 tensor or raise naming the argument."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(f"{name} must be a finite, non-empty (n, d) array; got shape {x.shape}")
    return torch.from_numpy(x.astype(np.float32))


@torch.no_grad()
def encode_dmch(model: dmch.DMCHNet, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DMCH codes (Eq. 1) and pre-quantization sigmoid values, each (n, K)."""
    model.eval()
    u, _ = model(_check_features(x, "x"))
    return dmch.binarize(u), u.numpy()


@torch.no_grad()
def encode_duwh(model: duwh.DUWHNet, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DUWH codes (Eq. 2 as {0, 1}) and approximate codes h (Eq. 1), each (n, k)."""
    model.eval()
    h = model(_check_features(x, "x"))
    return duwh.binarize(h), h.numpy()


def hamming_map(codes_q: np.ndarray, codes_b: np.ndarray, ev: EvalSet) -> float:
    """mAP@R of plain Hamming ranking under the protocol ``ev``."""
    return mean_average_precision(dmch.hamming_distances(codes_q, codes_b), ev.rel, ev.topk)


def _evaluate(
    encode: Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray]],
    model: nn.Module,
    ev: EvalSet,
) -> float:
    """Validation mAP of a model, leaving it in train mode."""
    codes_q, _ = encode(model, ev.xq)
    codes_b, _ = encode(model, ev.xb)
    model.train()
    return hamming_map(codes_q, codes_b, ev)


def mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    """Column means of a list of loss dicts."""
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} if rows else {}


def dmch_batch_loss(
    u: torch.Tensor,
    logits: torch.Tensor,
    y: torch.Tensor,
    config: dmch.DMCHLossConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DMCH Eq. 6 on one P x K batch after its triplet selection (Sec. 3.3).

    Args:
        u: relaxed codes f(G), shape (B, K).
        logits: class logits, shape (B, C).
        y: class ids, shape (B,), on the device of ``u``.
        config: loss weights and switches.
        generator: random generator of the nBatchAll-Tri ablation.

    Returns:
        (loss, history row with each term, ``loss`` and the number of ``triplets``).
    """
    triplets = dmch.select_triplets(u, y, config, generator)
    loss, parts = dmch.dmch_loss(u, logits, y, config, triplets)
    return loss, {**parts, "loss": float(loss.detach()), "triplets": float(len(triplets))}


def duwh_batch_loss(
    h: torch.Tensor, M: Any, idx: np.ndarray, config: duwh.DUWHLossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """DUWH Eq. 18 on one batch against its pseudo-labels ``m_ij`` from M (Eq. 12).

    Args:
        h: approximate codes of the batch, shape (B, k).
        M: sparse pseudo-label matrix (n, n).
        idx: the batch's row indices into M, shape (B,).
        config: lambda, n and the adaptive switch.

    Returns:
        (loss, history row with ``sim``, ``quant`` and ``loss``).
    """
    loss, parts = duwh.duwh_loss(h, duwh.batch_targets(M, idx).to(h.device), config)
    return loss, {**parts, "loss": float(loss.detach())}


def train_dmch(
    xt: np.ndarray,
    yt: np.ndarray,
    n_bits: int,
    *,
    eval_set: EvalSet | None = None,
    epochs: int = 100,
    p: int = 3,
    k: int = 30,
    lr: float = 1e-4,
    config: dmch.DMCHLossConfig | None = None,
    eval_every: int = 1,
    seed: int = 0,
) -> TrainResult:
    """Train DMCH's hash network on cached features (DMCH Sec. 3, settings of Sec. 4.2).

    Args:
        xt: training features G, shape (nt, d).
        yt: training class ids, shape (nt,).
        n_bits: code length K.
        eval_set: validation protocol for the per-epoch mAP; None skips evaluation.
        epochs: passes of ``nt // (p k)`` P x K batches (the paper stops at 800).
        p: classes per batch P (3 in the paper).
        k: images per class K (30 in the paper).
        lr: Adam learning rate (1e-4; betas (0.5, 0.9)).
        config: loss weights and ablation switches.
        eval_every: evaluate every this many epochs (and after the last).
        seed: seed of initialisation and sampling.

    Returns:
        The trained model and its per-epoch history.
    """
    config = config or dmch.DMCHLossConfig()
    torch.manual_seed(seed)
    x = _check_features(xt, "xt")
    y = torch.from_numpy(np.asarray(yt, dtype=np.int64))
    if len(y) != len(x):
        raise ValueError(f"yt has {len(y)} labels but xt has {len(x)} rows")
    model = dmch.DMCHNet(x.shape[1], n_bits, int(y.max()) + 1)
    optimizer = dmch.make_optimizer(model, lr)
    sampler = dmch.PKSampler(y.numpy(), p, k, seed)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        rows = []
        for idx in sampler:
            u, logits = model(x[idx])
            loss, row = dmch_batch_loss(u, logits, y[idx], config, generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            rows.append(row)
        history.append(_epoch_row(epoch, rows, eval_set, epochs, eval_every, encode_dmch, model))
    model.eval()
    params = {
        "model": "dmch",
        "in_dim": x.shape[1],
        "n_bits": n_bits,
        "epochs": epochs,
        "p": p,
        "k": k,
        "lr": lr,
        "betas": "(0.5, 0.9)",
        "seed": seed,
        **vars(config),
    }
    return TrainResult(model, history, params)


def _epoch_row(
    epoch: int,
    rows: list[dict[str, float]],
    eval_set: EvalSet | None,
    epochs: int,
    eval_every: int,
    encode: Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray]],
    model: nn.Module,
) -> dict[str, float]:
    """History row of one epoch: mean losses, plus mAP on evaluation epochs."""
    row = {"epoch": float(epoch), **mean_rows(rows)}
    if eval_set is not None and (epoch % eval_every == 0 or epoch == epochs):
        row["map"] = _evaluate(encode, model, eval_set)
    log.info("epoch %d %s", epoch, row)
    return row


def duwh_batches(
    M: Any, batch_size: int, rng: np.random.Generator, pair: bool
) -> Iterator[np.ndarray]:
    """One epoch of DUWH batches over the n rows of the sparse pseudo-label matrix M.

    With ``pair=False`` the data are shuffled and cut into batches. With ``pair=True`` each
    batch is ``batch_size / 2`` shuffled anchors plus one random similar partner of each
    (from M), so every batch holds similar pairs; the paper does not say how batches are
    drawn, and random batches of 128 out of 26,000 contain almost none.

    Args:
        M: csr_matrix (n, n) with ones at similar pairs.
        batch_size: B.
        rng: numpy generator.
        pair: draw anchor/partner batches.

    Yields:
        Index arrays of length <= B.
    """
    order = rng.permutation(M.shape[0])
    step = batch_size // 2 if pair else batch_size
    for s in range(0, len(order) - step + 1, step):
        anchors = order[s : s + step]
        if not pair:
            yield anchors
            continue
        partners = np.array([_random_partner(M, a, rng) for a in anchors])
        yield np.unique(np.concatenate([anchors, partners]))


def _random_partner(M: Any, i: int, rng: np.random.Generator) -> int:
    """A random j != i with M_ij = 1, or i itself if it has none."""
    row = M.indices[M.indptr[i] : M.indptr[i + 1]]
    row = row[row != i]
    return int(rng.choice(row)) if len(row) else i


@torch.no_grad()
def _fine_tuned_features(model: duwh.DUWHNet, x: torch.Tensor) -> np.ndarray:
    """``F_bar(x, W_bar)`` of Eq. 6 for the whole training set."""
    model.eval()
    out = model.embed(x).numpy()
    model.train()
    return out


def train_duwh(
    xt: np.ndarray,
    n_bits: int,
    *,
    eval_set: EvalSet | None = None,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 2e-5,
    config: duwh.DUWHLossConfig | None = None,
    k1: int = 20,
    k2: int = 30,
    update_epoch: int | None = 1,
    pair_batches: bool = True,
    feature_dim: int | None = None,
    seed: int = 0,
    M0: Any = None,
) -> TrainResult:
    """Train DUWH on cached features (DUWH Eq. 1-18, settings of "Datasets and Settings").

    Args:
        xt: training (unlabelled) features, shape (nt, d).
        n_bits: code length k.
        eval_set: validation protocol for the per-epoch mAP; None skips evaluation.
        epochs: training epochs.
        batch_size: B (128 in the paper).
        lr: Adam learning rate (2e-5 in the paper, for end-to-end Swin-T fine-tuning).
        config: lambda, n and the adaptive-weight switch.
        k1: K1 of the double-layer k-NN (20).
        k2: K2 of the double-layer k-NN (30).
        update_epoch: rebuild M from the fine-tuned features after this epoch (Eq. 6-12;
            the paper: after the first); None disables the update (DUWH-1).
        pair_batches: see :func:`duwh_batches`.
        feature_dim: see :class:`ml.hashing.duwh.DUWHNet`.
        seed: seed of initialisation and batching.
        M0: precomputed initial pseudo-labels (Eq. 3-5) to skip their construction.

    Returns:
        The trained model and its per-epoch history (with ``u`` and ``pairs`` after the
        update epoch).
    """
    config = config or duwh.DUWHLossConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = _check_features(xt, "xt")
    M = duwh.double_knn_similarity(xt, k1, k2) if M0 is None else M0
    model = duwh.DUWHNet(x.shape[1], n_bits, feature_dim)
    optimizer = duwh.make_optimizer(model, lr)
    history = []
    for epoch in range(1, epochs + 1):
        rows = []
        for idx in duwh_batches(M, batch_size, rng, pair_batches):
            loss, row = duwh_batch_loss(model(x[idx]), M, idx, config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            rows.append(row)
        row = _epoch_row(epoch, rows, eval_set, epochs, 1, encode_duwh, model)
        if epoch == update_epoch:
            M, row["u"] = duwh.update_similarity(M, _fine_tuned_features(model, x), k1, k2)
        row["pairs"] = float(M.nnz)
        history.append(row)
    model.eval()
    params = {
        "model": "duwh",
        "in_dim": x.shape[1],
        "n_bits": n_bits,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "k1": k1,
        "k2": k2,
        "update_epoch": update_epoch,
        "pair_batches": pair_batches,
        "feature_dim": feature_dim,
        "seed": seed,
        **vars(config),
    }
    return TrainResult(model, history, params)


@dataclass(frozen=True)
class Promotion:
    """Result of :func:`promote_if_better`.

    Attributes:
        version: the registered model version of the new run.
        promoted: whether the alias now points at it.
        new_map: its validation mAP.
        champion_map: the previous champion's validation mAP (None if there was none).
    """

    version: str
    promoted: bool
    new_map: float
    champion_map: float | None


def track_run(
    result: TrainResult,
    *,
    tracking_uri: str,
    experiment: str,
    retrieval_metrics: dict[str, Any],
    run_name: str | None = None,
) -> str:
    """Log a training result to MLflow and return the run id.

    Logs ``result.params``, every history column as a per-epoch metric (``step=epoch``),
    ``val_map`` (final validation mAP), the PyTorch model (its URI in the ``model_uri`` tag) and
    ``retrieval_metrics.json``.

    Args:
        result: output of :func:`train_dmch` or :func:`train_duwh`.
        tracking_uri: MLflow tracking URI, e.g. ``sqlite:///<dir>/mlflow.db``.
        experiment: experiment name (created when missing).
        retrieval_metrics: JSON-serialisable metrics (mAP@R, P@N, ...) of the evaluation.
        run_name: optional run name.

    Returns:
        The MLflow run id.
    """
    import mlflow

    if result.final_map is None:
        raise ValueError("result has no validation mAP; train with an eval_set to track it")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({key: str(value) for key, value in result.params.items()})
        for row in result.history:
            step = int(row["epoch"])
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=step)
        mlflow.log_metric(VAL_METRIC, result.final_map)
        mlflow.log_dict(retrieval_metrics, "retrieval_metrics.json")
        mlflow.set_tag(MODEL_URI_TAG, _log_model(result.model, int(result.params["in_dim"])))
        return str(run.info.run_id)


def _log_model(model: nn.Module, in_dim: int) -> str:
    """Log ``model`` (pickle format, (-1, d) float32 input signature); return its model URI."""
    import mlflow.pytorch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    spec = Schema([TensorSpec(np.dtype(np.float32), (-1, in_dim), "features")])
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=ModelSignature(inputs=spec),
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    return str(info.model_uri)


def promote_if_better(
    run_id: str, *, tracking_uri: str, model_name: str, alias: str = "champion"
) -> Promotion:
    """Register the run's model and move ``alias`` to it only if it beats the champion.

    The comparison is on ``val_map`` of the two runs (strictly greater wins); the first
    registered version always becomes champion.

    Args:
        run_id: run logged by :func:`track_run`.
        tracking_uri: MLflow tracking URI.
        model_name: registered model name, e.g. ``dmch-ucmerced-64``.
        alias: registry alias to maintain.

    Returns:
        The registered version and the decision.

    Raises:
        RegistryError: the current champion could not be read; nothing was registered.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    new_map = run.data.metrics[VAL_METRIC]
    champion_map = _champion_map(client, model_name, alias)
    mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(run.data.tags[MODEL_URI_TAG], model_name).version
    promoted = champion_map is None or new_map > champion_map
    if promoted:
        client.set_registered_model_alias(model_name, alias, str(version))
    return Promotion(str(version), promoted, float(new_map), champion_map)


def _champion_map(client: Any, model_name: str, alias: str) -> float | None:
    """``val_map`` of the run behind ``model_name@alias``; None when there is no champion.

    Only the registry's "does not exist" answer (``RESOURCE_DOES_NOT_EXIST``: no such model
    or alias) means no champion. Any other failure raises, since treating it as "no
    champion" would promote the new run over a real champion.

    Raises:
        RegistryError: the registry failed, or the champion's run has no ``val_map``.
    """
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise RegistryError(
            f"reading {model_name}@{alias} failed ({exc.error_code}): {exc}"
        ) from exc
    if champion.run_id is None:
        return None
    try:
        metrics = client.get_run(champion.run_id).data.metrics
    except MlflowException as exc:
        raise RegistryError(
            f"reading run {champion.run_id} of {model_name}@{alias} failed "
            f"({exc.error_code}): {exc}"
        ) from exc
    if VAL_METRIC not in metrics:
        raise RegistryError(
            f"run {champion.run_id} of {model_name}@{alias} has no {VAL_METRIC} metric to compare"
        )
    return float(metrics[VAL_METRIC])
