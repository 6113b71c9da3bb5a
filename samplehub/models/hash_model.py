"""Deep hash models of the repository: train DMCH or DUWH on stored features, track, promote, load.

Both build on the ``features`` table (:mod:`samplehub.feature_store`):

* **DMCH** (``../shared/papers/dmch-deep-metric-category-hashing.txt``, Sec. 3, Eq. 1-7,
  settings of Sec. 4.2) is supervised: it trains on the features of
  ``config.hashing.dmch_dataset`` with each sample's first label as its class, on the
  database part of a seeded per-class split; the held-out part (``val_fraction`` of each
  class, at most ``val_max_per_class``; DMCH's 40 % test split) queries the database for
  the validation mAP.
* **DUWH** (``../shared/papers/duwh-deep-unsupervised-weighted-hashing.txt``, Eq. 1-18) is
  unsupervised: it trains on every non-query sample of ``config.hashing.duwh_dataset``,
  labelled or not; labels only score the validation protocol (100 queries per class, the
  rest as database).

Both default to :data:`EVERY_DATASET` (``"*"``): the whole catalog, one row per image
(copies of one image across datasets count once), each scene sample classed by the
unified label its dataset label maps to in the label graph (section 3.3), so that one
class gathers the forests of every dataset and the codes serve queries across them
(:func:`catalog_features`). Land-cover (multi-label) datasets' samples carry no scene
class: DUWH trains on them, DMCH does not. A dataset name trains on that dataset alone,
classed by its own labels.

Every run is logged to the configured MLflow store
(:func:`samplehub.models.tracking.tracking_uri`: ``sqlite:///<home>/mlflow.db`` with
artifacts under ``<home>/mlartifacts`` by default, or ``mlflow.tracking_uri``; experiment
``hashing``) by :func:`ml.hashing.train.track_run`:
params, per-epoch losses and mAP, the model and ``retrieval_metrics.json``; the run also
carries the tags ``feature_version``, ``dataset`` and ``catalog_samples`` (the catalog size
at training, read by the retraining sensor). The model is registered as
``<method>-<bits>`` (e.g. ``dmch-64``) and the alias ``config.hashing.alias`` moves to it
only when its validation mAP beats the current champion's
(:func:`ml.hashing.train.promote_if_better`). A registry that fails while the champion is
read stops the promotion (:class:`~samplehub.errors.ModelRegistryError`): an unreadable
champion is not an absent one.

The served model's version string is ``<method>-<bits>-v<registered version>``; it keys the
``hash_codes`` table and the Hamming index folder (:mod:`samplehub.index.hamming`). A loaded
model is kept on its repository (:attr:`samplehub.repository.Repository.models`), never in
this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from ml.hashing.dmch import hamming_distances
from ml.hashing.train import (
    EvalSet,
    RegistryError,
    encode_dmch,
    encode_duwh,
    promote_if_better,
    track_run,
    train_dmch,
    train_duwh,
)
from ml.metrics import mean_average_precision, precision_at_n
from samplehub.config import SampleHubConfig
from samplehub.errors import (
    ConfigError,
    IndexNotTrainedError,
    ModelRegistryError,
    SampleHubError,
    without_credentials,
)
from samplehub.feature_store import load_features
from samplehub.labels.graph import SCENE, LabelGraph
from samplehub.models.feature_model import model_version
from samplehub.models.tracking import (
    artifact_location,
    has_tracking_store,
    registry_failures,
    tracking_uri,
)
from samplehub.repository import ModelCache, Repository

log = logging.getLogger(__name__)

METHODS = ("dmch", "duwh")
EXPERIMENT = "hashing"
FEATURE_TAG = "feature_version"
DATASET_TAG = "dataset"
EVERY_DATASET = "*"
SAMPLES_TAG = "catalog_samples"
PRECISION_AT = [10, 50, 100]


def check_method(method: str) -> str:
    """``method`` if it is ``dmch`` or ``duwh``.

    Raises:
        ConfigError: another value (``hashing.method``).
    """
    if method not in METHODS:
        raise ConfigError(f"hashing.method={method!r}: choose one of {', '.join(METHODS)}")
    return method


def registered_name(config: SampleHubConfig, method: str | None = None) -> str:
    """Registered model name ``<method>-<bits>`` (default method: ``hashing.method``)."""
    return f"{check_method(method or config.hashing.method)}-{config.hashing.bits}"


def catalog_size(repo: Repository) -> int:
    """Samples in the catalog over every dataset."""
    return int(repo.catalog.read("samples", columns=["sample_id"]).num_rows)


@dataclass
class DatasetFeatures:
    """Stored features of one dataset (or the catalog) with class ids.

    Attributes:
        ids: sample ids (n,) int64, ascending.
        xb: unit-norm features (n, d) float32.
        y: class id of each sample (n,), -1 for a sample without a class.
        classes: class names, indexed by ``y``.
    """

    ids: np.ndarray
    xb: np.ndarray
    y: np.ndarray
    classes: list[str]


def dataset_features(repo: Repository, dataset: str) -> DatasetFeatures:
    """The current feature model's features of ``dataset`` and their catalog labels.

    ``dataset`` :data:`EVERY_DATASET` reads the whole catalog (:func:`catalog_features`).

    Raises:
        IndexNotTrainedError: the dataset has no features of the current model version
            (or is not in the catalog).
    """
    if dataset == EVERY_DATASET:
        return catalog_features(repo)
    rows = repo.catalog.read("samples", dataset, columns=["sample_id", "labels"]).to_pandas()
    version = model_version(repo.config)
    ids, xb = load_features(repo.catalog, version, [dataset])
    if not len(ids):
        raise IndexNotTrainedError(
            f"dataset {dataset!r} has no features of model version {version}; materialize "
            f"image_features[{dataset}] first"
        )
    first = rows.set_index("sample_id")["labels"].map(lambda ls: ls[0] if len(ls) else "")
    return classed(ids, xb, first.reindex(ids).fillna("").to_numpy())


def classed(ids: np.ndarray, xb: np.ndarray, names: np.ndarray) -> DatasetFeatures:
    """Features with class ids from per-sample class names ("" for no class)."""
    classes = sorted({n for n in names if n})
    column = {name: i for i, name in enumerate(classes)}
    y = np.array([column.get(n, -1) for n in names], dtype=np.int64)
    return DatasetFeatures(ids, xb, y, classes)


def catalog_features(repo: Repository) -> DatasetFeatures:
    """Every dataset's features, one row per image, classed by unified label.

    A sample's class is the unified label its first dataset label maps to in the latest
    label graph; a label the graph does not hold yet (a dataset ingested after the last
    merge) is its own class, ``<dataset>/<label>``, until the next merge; a land-cover
    label gives no class. Of several copies of one image (one content hash) one row
    stands for all: the lowest sample id among the copies with a class, else the lowest.

    Raises:
        IndexNotTrainedError: no dataset has features of the current model version.
    """
    version = model_version(repo.config)
    ids, xb = load_features(repo.catalog, version)
    if not len(ids):
        raise IndexNotTrainedError(
            f"no dataset has features of model version {version}; materialize image_features")
    rows = (repo.catalog.read("samples", columns=["sample_id", "dataset", "labels",
                                                  "content_hash"])
            .to_pandas().set_index("sample_id").reindex(ids))
    graph = repo.labels.load() if repo.labels.versions() else None
    names = np.array([
        scene_class(graph, str(dataset), labels[0] if len(labels) else "")
        for dataset, labels in zip(rows["dataset"], rows["labels"], strict=True)
    ], dtype=object)
    # one row per image: its first copy with a class, else its first copy
    hashes = rows["content_hash"].fillna(rows.index.to_series().astype(str)).to_numpy()
    order = np.lexsort((ids, names == ""))
    _, first = np.unique(hashes[order], return_index=True)
    keep = np.sort(order[first])
    return classed(ids[keep], xb[keep], names[keep])


def scene_class(graph: LabelGraph | None, dataset: str, label: str) -> str:
    """The class of a sample labelled ``label`` in ``dataset`` (:func:`catalog_features`)."""
    if not label:
        return ""
    label_id = f"{dataset}/{label}"
    if graph is None or label_id not in graph:
        return label_id
    if graph.kind_of(label_id) != SCENE:
        return ""
    return graph.mapped_to(label_id) or label_id


def validation_split(
    y: np.ndarray, fraction: float, max_per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split into query and database rows of the labelled samples.

    Each class with at least two samples gives ``round(fraction n_c)`` queries (at least one,
    at most ``max_per_class``); the rest of the labelled rows form the database.

    Args:
        y: class ids (n,), -1 for unlabelled rows (in neither part).
        fraction: share of each class held out as queries (DMCH: 0.4).
        max_per_class: cap on queries per class (DUWH: 100).
        seed: seed of the split.

    Returns:
        Row indices of the queries and of the database, each ascending.
    """
    rng = np.random.default_rng(seed)
    queries = []
    for c in np.unique(y[y >= 0]):
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) >= 2:
            n_q = min(max_per_class, len(members) - 1, max(1, round(fraction * len(members))))
            queries.append(members[:n_q])
    q = np.sort(np.concatenate(queries)) if queries else np.zeros(0, np.int64)
    database = np.setdiff1d(np.flatnonzero(y >= 0), q)
    return q, database


@dataclass(frozen=True)
class HashTraining:
    """One tracked training run and the promotion decision.

    Attributes:
        method: ``dmch`` or ``duwh``.
        model_name: the registered model, ``<method>-<bits>``.
        run_id: the MLflow run.
        version: the registered version of this run.
        promoted: whether the alias now points at it.
        alias: the registry alias.
        val_map: validation mAP of this run.
        champion_map: the previous champion's validation mAP, None if there was none.
        dataset: the training dataset.
        samples: training samples.
        feature_version: the feature model version the codes are computed from.
    """

    method: str
    model_name: str
    run_id: str
    version: str
    promoted: bool
    alias: str
    val_map: float
    champion_map: float | None
    dataset: str
    samples: int
    feature_version: str


def train_hash_model(repo: Repository, method: str, dataset: str | None = None) -> HashTraining:
    """Train DMCH or DUWH on a dataset's stored features, track it and promote if better.

    Args:
        repo: the repository (``config.hashing`` gives bits, epochs, learning rates, ...).
        method: ``dmch`` (supervised) or ``duwh`` (unsupervised).
        dataset: None uses ``hashing.dmch_dataset`` / ``hashing.duwh_dataset``.

    Returns:
        The run, its registered version and whether it became the champion.

    Raises:
        ConfigError: an unknown method.
        SampleHubError: fewer than two labelled classes to validate on.
        IndexNotTrainedError: the dataset has no features yet.
        ModelRegistryError: the registry failed while reading the current champion; nothing
            was registered or promoted.
    """
    h = repo.config.hashing
    check_method(method)
    name = dataset or (h.dmch_dataset if method == "dmch" else h.duwh_dataset)
    data = dataset_features(repo, name)
    q, b = validation_split(data.y, h.val_fraction, h.val_max_per_class)
    if len(q) == 0 or len(np.unique(data.y[b])) < 2:
        raise SampleHubError(
            f"dataset {name!r} needs at least two labelled classes with two samples each to "
            f"validate {method.upper()} (found {len(data.classes)} classes); set "
            f"hashing.{method}_dataset to a labelled dataset"
        )
    ev = EvalSet(data.xb[q], data.y[q], data.xb[b], data.y[b], h.val_topk)
    if method == "dmch":
        result = train_dmch(
            data.xb[b], data.y[b], h.bits, eval_set=ev, epochs=h.epochs,
            p=min(h.classes_per_batch, len(np.unique(data.y[b]))), k=h.images_per_class,
            lr=h.dmch_lr,
        )
        n_train = len(b)
    else:
        train_rows = np.setdiff1d(np.arange(len(data.ids)), q)
        n = len(train_rows)
        result = train_duwh(
            data.xb[train_rows], h.bits, eval_set=ev, epochs=h.epochs,
            batch_size=min(h.batch_size, n), lr=h.duwh_lr, k1=min(h.k1, n - 1),
            k2=min(h.k2, n - 1),
        )
        n_train = n
    feature_version = model_version(repo.config)
    uri = tracking_uri(repo.config)
    model_name = registered_name(repo.config, method)
    with registry_failures(repo.config, model_name, h.alias):
        _ensure_experiment(repo.config)
        run_id = track_run(
            result,
            tracking_uri=uri,
            experiment=EXPERIMENT,
            retrieval_metrics=retrieval_metrics(method, result.model, ev, name, feature_version),
            run_name=f"{model_name}-{name}",
        )
        _tag_run(uri, run_id, {FEATURE_TAG: feature_version, DATASET_TAG: name,
                               SAMPLES_TAG: str(catalog_size(repo))})
        try:
            promotion = promote_if_better(
                run_id, tracking_uri=uri, model_name=model_name, alias=h.alias
            )
        except RegistryError as exc:
            raise ModelRegistryError(
                f"{model_name}@{h.alias} could not be read from the MLflow registry at "
                f"{without_credentials(uri)}, so run {run_id} was neither registered nor "
                f"promoted: {exc}. Repair the store (or set mlflow.tracking_uri to a working "
                "one) and train again"
            ) from exc
    log.info("%s run %s: mAP %.4f, promoted=%s", model_name, run_id, promotion.new_map,
             promotion.promoted)
    return HashTraining(
        method, model_name, run_id, promotion.version, promotion.promoted, h.alias,
        promotion.new_map, promotion.champion_map, name, n_train, feature_version,
    )


def retrieval_metrics(
    method: str, model: nn.Module, ev: EvalSet, dataset: str, feature_version: str
) -> dict[str, Any]:
    """The ``retrieval_metrics.json`` of a run: mAP@R and P@N of Hamming ranking."""
    encode = encode_dmch if method == "dmch" else encode_duwh
    codes_q, _ = encode(model, ev.xq)  # type: ignore[arg-type]
    codes_b, _ = encode(model, ev.xb)  # type: ignore[arg-type]
    D = hamming_distances(codes_q, codes_b)
    ns = [n for n in PRECISION_AT if n <= len(ev.xb)] or [len(ev.xb)]
    return {
        "protocol": "hamming ranking of held-out queries against the database",
        "dataset": dataset,
        "feature_version": feature_version,
        "bits": int(codes_q.shape[1]),
        "nq": len(ev.xq),
        "nb": len(ev.xb),
        "topk": ev.topk,
        "map": mean_average_precision(D, ev.rel, ev.topk),
        "precision_at": {str(n): p for n, p in precision_at_n(D, ev.rel, ns).items()},
    }


def _ensure_experiment(config: SampleHubConfig) -> None:
    """Create the ``hashing`` experiment at :func:`~.tracking.artifact_location`."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(config))
    if client.get_experiment_by_name(EXPERIMENT) is None:
        location = artifact_location(config)
        uri = location.as_uri() if location is not None else None
        client.create_experiment(EXPERIMENT, artifact_location=uri)


def _tag_run(uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set tags on a finished run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


@dataclass
class HashModel:
    """The champion hash network of one method.

    Attributes:
        method: ``dmch`` or ``duwh``.
        name: registered model name.
        version: registered version.
        net: the network (eval mode, CPU).
        feature_version: the feature model version it was trained on.
    """

    method: str
    name: str
    version: str
    net: nn.Module
    feature_version: str

    @property
    def model_version(self) -> str:
        """``<method>-<bits>-v<version>``: the key of its codes and index."""
        return f"{self.name}-v{self.version}"

    @property
    def n_bits(self) -> int:
        """Code length K."""
        return int(self.name.rsplit("-", 1)[1])

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes {0, 1} (n, K) and pre-quantization values (n, K) of features ``x`` (n, d).

        DMCH: Eq. 1 on the sigmoid layer, values in (0, 1); DUWH: Eq. 2 on the tanh layer
        as {0, 1}, values in (-1, 1). Either way, bits on which two codes agree have values
        less than 1 apart, which DMCH Eq. 7's fine term relies on.
        """
        encode = encode_dmch if self.method == "dmch" else encode_duwh
        return encode(self.net, x)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Champion:
    """Registry facts of a champion without loading its weights.

    Attributes:
        name: registered model name.
        version: registered version.
        run_id: its MLflow run.
        tags: the run's tags (``feature_version``, ``catalog_samples``, ...).
    """

    name: str
    version: str
    run_id: str
    tags: dict[str, str]


def champion(config: SampleHubConfig, method: str | None = None) -> Champion | None:
    """The champion of ``<method>-<bits>`` under ``hashing.alias``, or None (cheap, no weights).

    No MLflow store (the default SQLite file absent) also gives None, without creating one.
    """
    if not has_tracking_store(config):
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    name = registered_name(config, method)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(config))
    try:
        found = client.get_model_version_by_alias(name, config.hashing.alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    tags = dict(client.get_run(found.run_id).data.tags) if found.run_id else {}
    return Champion(name, str(found.version), str(found.run_id), tags)


def load_hash_model(
    config: SampleHubConfig, method: str | None = None, models: ModelCache | None = None
) -> HashModel:
    """The champion hash model of ``method`` (default ``hashing.method``).

    The champion is looked up on every call (cheap); its weights are loaded once per
    registered version into ``models`` (the repository's
    :attr:`~samplehub.repository.Repository.models`), or for this call alone when None.

    Raises:
        IndexNotTrainedError: no champion yet, or it was trained on features of another
            model version than the repository's current one.
    """
    found = champion(config, method)
    name = registered_name(config, method)
    if found is None:
        raise IndexNotTrainedError(
            f"no registered hash model {name}@{config.hashing.alias} in {tracking_uri(config)}; "
            f"materialize the {name.split('-')[0]}_model asset (job train_hash_models)"
        )
    current = model_version(config)
    if found.tags.get(FEATURE_TAG) != current:
        raise IndexNotTrainedError(
            f"{name}@{config.hashing.alias} was trained on features {found.tags.get(FEATURE_TAG)} "
            f"but the repository is at {current}; retrain it (asset {name.split('-')[0]}_model)"
        )
    version = found.version

    def load() -> HashModel:
        import mlflow.pytorch

        mlflow.set_tracking_uri(tracking_uri(config))
        net = mlflow.pytorch.load_model(f"models:/{name}/{version}", map_location="cpu")
        return HashModel(name.split("-")[0], name, version, net.eval(), current)

    if models is None:
        return load()
    return models.get("hash", f"{name}-v{version}", load)


@dataclass(frozen=True)
class RetrainCheck:
    """Whether enough new samples landed since the champion (or the last request).

    Attributes:
        current: catalog samples now.
        baseline: catalog samples when the champion was trained or retraining was last
            requested, whichever is later.
        threshold: ``hashing.retrain_min_new_samples``.
    """

    current: int
    baseline: int
    threshold: int

    @property
    def due(self) -> bool:
        """At least ``threshold`` samples arrived since ``baseline``."""
        return self.current - self.baseline >= self.threshold


def retraining_due(
    repo: Repository, last_requested: int = 0, method: str | None = None
) -> RetrainCheck:
    """Compare the catalog size with the champion's training-time size and the last request.

    Args:
        repo: the repository.
        last_requested: catalog size at the last retraining request (the sensor's cursor).
        method: None uses ``hashing.method``.
    """
    found = champion(repo.config, method)
    trained = int(found.tags.get(SAMPLES_TAG, "0")) if found is not None else 0
    threshold = repo.config.hashing.retrain_min_new_samples
    return RetrainCheck(catalog_size(repo), max(trained, last_requested), threshold)
