"""Configuration: Hydra's ``conf/`` tree validated against structured dataclasses.

``conf/config.yaml`` picks one option per group (storage, graph, executor, instance,
mlflow, model, retrieval, hashing, hir, labelling); ``conf/sources/*.yaml`` describe dataset
sources, one per file. This module is the only place that reads environment variables. A wrong
key or a value of the wrong type fails with :class:`~samplehub.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from samplehub.errors import ConfigError
from samplehub.labels.association import AssociationWeights
from samplehub.labels.merge import MergeSettings
from samplehub.sources.base import SourceSpec

REPO_CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class StorageConfig:
    """Where tables and stores live: ``<home>/catalog``, ``<home>/zarr`` unless overridden."""

    catalog_uri: str | None = None
    store_uri: str | None = None
    cache_dir: str | None = None
    thumb_size: int = 64
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutorConfig:
    """How ingestion and extraction run: threads in-process, or Spark."""

    kind: str = "threads"
    workers: int = 4
    batch_size: int = 2048
    spark_master: str = "local[*]"


@dataclass
class InstanceConfig:
    """The Dagster instance: SQLite in DAGSTER_HOME, or PostgreSQL."""

    kind: str = "sqlite"
    postgres_url: str | None = None


@dataclass
class MlflowConfig:
    """Model tracking (DESIGN.md section 3): MLflow's tracking URI and artifact folder.

    ``tracking_uri`` null is the embedded default, ``sqlite:///<home>/mlflow.db`` with
    artifacts under ``<home>/mlartifacts``; a server URI (``http://host:5000``) leaves the
    artifacts to the server unless ``artifact_location`` names a local folder.
    """

    tracking_uri: str | None = None
    artifact_location: str | None = None
    request_retries: int = 5
    """Retries of a failed request to a tracking server (MLflow's client retries resets,
    timeouts, 429 and 5xx with exponential backoff)."""
    request_backoff_s: int = 2
    """Backoff factor: waits of 2, 4, 8, ... seconds (capped by MLflow at 120 s)."""
    request_timeout_s: float = 30.0
    """Timeout of one request; a stalled server counts as a failed try."""


@dataclass
class SceneTrainingConfig:
    """Training of the multi-label scene model (main paper, section 3.4.2; ``model.train``).

    The hyperparameters of :class:`ml.features.SceneTrainConfig` but ``dim``, which is
    ``model.dim``.
    """

    # A copy of SceneTrainConfig's fields, kept on purpose: ``ml`` cannot import
    # ``samplehub``, SceneTrainConfig carries ``dim`` that the configuration keeps once in
    # ``model.dim`` for the encoder too, and importing ``ml.features`` here would load torch
    # for every configuration read. tests/samplehub/test_config.py checks the two agree.

    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    pair_weight: float = 1.0
    margin: float = 1.0
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class ModelConfig:
    """Vision backbone, feature extraction and scene-model training (main paper, 3.4.2)."""

    backbone: str = "tf_efficientnet_lite0"
    resolution: int = 224
    dim: int = 512
    precision: str = "auto"
    runtime: str = "auto"
    batch_size: int = 32
    threads: int = 0
    registered_model: str = "scene_model"
    alias: str = "champion"
    train_dataset: str = "ucmerced_multilabel"
    train: SceneTrainingConfig = field(default_factory=SceneTrainingConfig)


@dataclass
class RetrievalConfig:
    """Index and query settings."""

    cell_size: int = 100
    nlist: int = 65536
    pq_m: int = 64
    pq_nbits: int = 8
    nprobe: int = 96
    max_codes: int = 12000
    refine_factor: int = 8
    store: str = "fp16"
    mmap: bool = True
    retrain_growth: float = 2.0
    exact_below: int = 20000
    prototypes_per_label: int = 4
    similarity_threshold: float = 0.5
    max_label_distance: float = 3.0
    max_prototype_labels: int | None = 3
    recall_k: int = 100
    recall_bar: float = 0.9
    recall_probe: int = 200


@dataclass
class HashingConfig:
    """Deep hashing settings: training, promotion, serving and retraining.

    The methods are the DMCH and DUWH papers in ``../shared/papers``.
    """

    method: str = "dmch"
    bits: int = 64
    dmch_dataset: str = "*"
    duwh_dataset: str = "*"
    epochs: int = 50
    dmch_lr: float = 1e-4
    duwh_lr: float = 1e-3
    classes_per_batch: int = 3
    images_per_class: int = 30
    batch_size: int = 128
    k1: int = 20
    k2: int = 30
    val_fraction: float = 0.4
    val_max_per_class: int = 100
    val_topk: int | None = None
    alias: str = "champion"
    top_m: int = 100
    ivf_min_size: int = 200_000
    nprobe: int = 16
    compare_probe: int = 200
    compare_k: int = 100
    retrain_min_new_samples: int = 1000
    retrain_cron: str = "0 4 * * 0"


@dataclass
class HirConfig:
    """Hierarchical image retrieval settings (``conf/hir``).

    Paper: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``.

    Attributes:
        tkanet_dataset: labelled scene dataset TKANet trains on (class = first label).
        esformer_dataset: multi-label dataset ESFormer trains on, weakly (image labels).
        merge_labels: training-label merges (the paper merges the residential densities).
        resolution: training and inference input side (multiple of 64).
        tkanet_epochs: TKANet training epochs.
        esformer_epochs: ESFormer training epochs (decoder on the frozen encoder).
        batch_size: images per training step.
        tkanet_lr: TKANet AdamW peak learning rate.
        esformer_lr: ESFormer decoder AdamW peak learning rate.
        max_train_samples: cap on training images (seeded pick), null for all.
        val_fraction: share of the training images held out to pick the best epoch.
        proportions: ``soft`` or ``hard`` land-cover statistics (ml.hir.train).
        rerank_k: K, stage-1 candidates re-ranked by Eq. 1 (75 in the paper).
        alias: registry alias of the served models.
        batch: images per inference batch of ``landcover_stats``.
    """

    tkanet_dataset: str = "ucmerced"
    esformer_dataset: str = "ucmerced_multilabel"
    merge_labels: dict[str, str] = field(default_factory=lambda: {
        name: "residential" for name in ("denseresidential", "mediumresidential",
                                         "sparseresidential")})
    resolution: int = 64
    tkanet_epochs: int = 3
    esformer_epochs: int = 3
    batch_size: int = 32
    tkanet_lr: float = 2e-3
    esformer_lr: float = 1e-3
    max_train_samples: int | None = 400
    val_fraction: float = 0.1
    proportions: str = "soft"
    rerank_k: int = 75
    alias: str = "champion"
    batch: int = 32


@dataclass
class LabellingConfig:
    """Unsupervised labelling pipeline settings (``conf/labelling``).

    Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``.

    Attributes:
        datasets: dataset partitions the pipeline runs on (chips of kind ``tiles``); the
            labelling assets of any other partition record that they skipped it.
        clusters: C, fuzzy C-means clusters (section 2.2; the paper tries 2, 8, 18).
        fuzzifier: m of fuzzy C-means (> 1).
        fcm_samples: pixels in FCM's uniform fitting subsample.
        fcm_max_iter: FCM updates at most.
        unet_width: U-Net channel multiplier (1: 64..1024 channels, the paper's).
        unet_epochs: U-Net epochs at most.
        unet_patience: epochs without a lower validation loss before stopping (paper: 15).
        unet_batch_size: chips per U-Net step.
        unet_lr: U-Net Adam learning rate.
        noise: Gaussian noise of the augmentation (standardized band units).
        val_fraction: share of the training chips held out for early stopping.
        n_segments: SLIC's target segments per chip (section 2.5: 500).
        compactness: SLIC compactness.
        k_neighbours: geographic neighbours per segment (section 2.5: 8).
        gnn: ``gcn`` (60-d embedding, the paper's choice) or ``gat`` (8 heads x 8).
        gnn_epochs: GNN epochs at most.
        gnn_patience: GNN early-stopping patience.
        gnn_lr: GNN Adam learning rate.
        graphs_per_batch: chips per GNN step.
        umap_neighbors: UMAP's n_neighbors; also the k whose chip neighbourhoods the fast
            Hungarian path keeps exact.
        umap_min_dist: UMAP's min_dist.
        segment_umap_fit: segments UMAP is fitted on (seeded draw); the rest are transformed.
        match_extra: candidates beyond umap_neighbors that get the cluster transport bound
            per chip.
        match_clusters: k-means clusters per chip for that bound.
        match_max_exact: bound on full assignments of the fast path (null: none).
        workers: threads computing bounds and solving assignments.
        device: ``cpu`` or ``cuda`` for U-Net and GNN training and inference.
        seed: seeds subsamples, splits, initialisation and UMAP.
        alias: registry alias of the served U-Net and GNN.
    """

    datasets: list[str] = field(default_factory=lambda: ["oscd_tiles"])
    clusters: int = 8
    fuzzifier: float = 2.0
    fcm_samples: int = 50_000
    fcm_max_iter: int = 150
    unet_width: float = 0.25
    unet_epochs: int = 30
    unet_patience: int = 8
    unet_batch_size: int = 8
    unet_lr: float = 1e-3
    noise: float = 0.05
    val_fraction: float = 0.1
    n_segments: int = 500
    compactness: float = 10.0
    k_neighbours: int = 8
    gnn: str = "gcn"
    gnn_epochs: int = 100
    gnn_patience: int = 15
    gnn_lr: float = 5e-3
    graphs_per_batch: int = 16
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    segment_umap_fit: int = 20_000
    match_extra: int = 30
    match_clusters: int = 64
    match_max_exact: int | None = 1200
    workers: int = 2
    device: str = "cpu"
    seed: int = 0
    alias: str = "champion"


GRAPH_BACKENDS = ("embedded", "neo4j")


@dataclass
class Neo4jConfig:
    """Bolt connection of the Neo4j label-graph backend (``NEO4J_*`` in ``conf/graph``)."""

    uri: str = "bolt://localhost:7687"
    user: str = "neo4j"
    password: str = "samplehub"
    database: str = "neo4j"


@dataclass
class GraphConfig:
    """The label category graph (``conf/graph/*.yaml``; main paper, section 3.3).

    Relative paths are taken from the repository root (the parent of ``conf/``);
    :func:`samplehub.labels.settings.graph_settings_from_config` resolves them.

    Attributes:
        backend: ``embedded`` (networkx + Delta under the home) or ``neo4j``.
        taxonomy: ``dataset_labels.json``.
        osm_network: ``osm_semantic_network.skos.rdf.gz``.
        overrides: the human override file (pin/forbid); null for none.
        embedding_model: ``bundled:all-MiniLM-L6-v2`` or a local model path.
        min_in_links: OSM tags with fewer incoming links get the smoothed citation set.
        narrower_decay: structural-similarity factor per narrower (qualified-label) hop.
        cooccurrence_min_count: minimum joint count for a ``CO_OCCURS`` edge.
        merge: Algorithm 1 (:class:`samplehub.labels.merge.MergeSettings`, which checks the
            ranges when the configuration loads).
        association: Eq. 1 (:class:`samplehub.labels.association.AssociationWeights`,
            likewise).
        neo4j: Bolt connection of the ``neo4j`` backend.
    """

    backend: str = "embedded"
    taxonomy: str = "../shared/taxonomy/dataset_labels.json"
    osm_network: str = "../shared/data/osm_semantic_network/osm_semantic_network.skos.rdf.gz"
    overrides: str | None = "conf/label_overrides.yaml"
    embedding_model: str = "bundled:all-MiniLM-L6-v2"
    min_in_links: int = 3
    narrower_decay: float = 0.5
    cooccurrence_min_count: int = 5
    merge: MergeSettings = field(default_factory=MergeSettings)
    association: AssociationWeights = field(default_factory=AssociationWeights)
    neo4j: Neo4jConfig = field(default_factory=Neo4jConfig)


@dataclass
class SampleHubConfig:
    """The whole configuration (``conf/config.yaml`` plus the chosen group options)."""

    home: str = "~/.samplehub"
    data_root: str = "../shared/data"
    sources_dir: str | None = None
    watch_root: str | None = None
    rescan_cron: str = "0 3 * * *"
    api_token: str | None = None
    max_upload_mb: float = 20.0
    storage: StorageConfig = field(default_factory=StorageConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    hashing: HashingConfig = field(default_factory=HashingConfig)
    hir: HirConfig = field(default_factory=HirConfig)
    labelling: LabellingConfig = field(default_factory=LabellingConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)

    @property
    def home_path(self) -> Path:
        """``home`` expanded and made absolute."""
        return Path(self.home).expanduser().resolve()

    @property
    def catalog_uri(self) -> str:
        """Root of the Delta tables."""
        return self.storage.catalog_uri or str(self.home_path / "catalog")

    @property
    def store_uri(self) -> str:
        """Root of the Zarr stores."""
        return self.storage.store_uri or str(self.home_path / "zarr")

    @property
    def cache_dir(self) -> str:
        """Read-through cache of remote sources."""
        return self.storage.cache_dir or str(self.home_path / "cache")


@dataclass
class SourceConfig:
    """Schema of one ``conf/sources/<name>.yaml`` file.

    The fields of :class:`samplehub.sources.SourceSpec`, which :func:`load_source` builds
    from it with :meth:`~samplehub.sources.SourceSpec.from_record`. A copy, kept because
    OmegaConf validates ``dict`` fields but not the spec's read-only ``Mapping`` ones;
    tests/samplehub/test_config.py checks the two name the same fields.
    """

    name: str
    uri: str
    kind: str = "auto"
    platform: str = "local"
    licence: str = ""
    citation: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    storage_options: dict[str, Any] = field(default_factory=dict)


def config_error(exc: OmegaConfBaseException, where: str) -> ConfigError:
    """A ConfigError naming the offending key of an OmegaConf validation error."""
    key = getattr(exc, "full_key", None) or "?"
    message = str(exc).splitlines()[0]
    return ConfigError(f"{where}: invalid configuration key {key!r}: {message}")


def load_config(
    overrides: list[str] | None = None, conf_dir: str | os.PathLike[str] | None = None
) -> SampleHubConfig:
    """Compose ``conf/config.yaml`` with Hydra, apply overrides and validate.

    Environment: ``SAMPLEHUB_HOME`` sets ``home``, ``SAMPLEHUB_DATA`` sets ``data_root``,
    ``SAMPLEHUB_CONF`` points at another ``conf/`` folder, ``SAMPLEHUB_OVERRIDES`` holds
    space-separated overrides for every process (``make demo``, ``dg dev``) that
    ``overrides`` extend. Overrides use Hydra syntax (``executor.workers=2``, ``graph=neo4j``).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    directory = Path(conf_dir or os.environ.get("SAMPLEHUB_CONF") or REPO_CONF_DIR).resolve()
    if not (directory / "config.yaml").exists():
        raise ConfigError(f"no config.yaml in {directory}; set SAMPLEHUB_CONF to a conf/ folder")
    env_overrides = []
    if "SAMPLEHUB_HOME" in os.environ:
        env_overrides.append(f"home={os.environ['SAMPLEHUB_HOME']}")
    if "SAMPLEHUB_DATA" in os.environ:
        env_overrides.append(f"data_root={os.environ['SAMPLEHUB_DATA']}")
    env_overrides += shlex.split(os.environ.get("SAMPLEHUB_OVERRIDES", ""))
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            raw = compose(config_name="config", overrides=[*env_overrides, *(overrides or [])])
    except HydraException as exc:
        raise ConfigError(f"{directory}/config.yaml: {exc}") from exc
    schema = OmegaConf.structured(SampleHubConfig)
    # OmegaConf makes a frozen dataclass's node read-only, which would refuse conf/'s values;
    # the label graph's settings types are frozen once built, not while being composed.
    for section in (schema.graph.merge, schema.graph.association):
        OmegaConf.set_readonly(section, None)
    try:
        merged = OmegaConf.merge(schema, raw)
        config = cast(SampleHubConfig, OmegaConf.to_object(merged))
    except OmegaConfBaseException as exc:
        raise config_error(exc, f"{directory}/config.yaml") from exc
    check_labelling(config.labelling, directory)
    m = config.mlflow
    if m.request_retries < 0 or m.request_backoff_s < 0 or m.request_timeout_s <= 0:
        raise ConfigError(
            f"{directory}/config.yaml: mlflow.request_retries and mlflow.request_backoff_s must "
            f"be >= 0 and mlflow.request_timeout_s > 0, got {m.request_retries}, "
            f"{m.request_backoff_s} and {m.request_timeout_s}"
        )
    if config.graph.backend not in GRAPH_BACKENDS:
        raise ConfigError(
            f"{directory}/config.yaml: graph.backend must be one of {list(GRAPH_BACKENDS)}, got "
            f"{config.graph.backend!r}; choose a conf/graph option (graph=embedded, graph=neo4j)"
        )
    config.sources_dir = config.sources_dir or str(directory / "sources")
    return config


def check_labelling(labelling: LabellingConfig, directory: Path) -> None:
    """Ranges of ``labelling.*`` that the types alone do not check.

    Raises:
        ConfigError: names the key and the accepted values.
    """
    where = f"{directory}/config.yaml: labelling"
    if labelling.gnn not in ("gcn", "gat"):
        raise ConfigError(f"{where}.gnn must be gcn or gat, got {labelling.gnn!r}")
    if labelling.device not in ("cpu", "cuda") and not labelling.device.startswith("cuda:"):
        raise ConfigError(f"{where}.device must be cpu or cuda, got {labelling.device!r}")
    if labelling.clusters < 2 or labelling.fuzzifier <= 1.0:
        raise ConfigError(
            f"{where}: clusters must be >= 2 and fuzzifier > 1, got {labelling.clusters} and "
            f"{labelling.fuzzifier}"
        )
    if labelling.unet_width <= 0 or not 0 < labelling.val_fraction < 1:
        raise ConfigError(
            f"{where}: unet_width must be > 0 and val_fraction in (0, 1), got "
            f"{labelling.unet_width} and {labelling.val_fraction}"
        )


def load_source(path: str | os.PathLike[str], data_root: str = ".") -> SourceSpec:
    """Read and validate one ``conf/sources/*.yaml``; ``${data_root}`` in ``uri`` resolves.

    Relative local URIs are resolved against the current directory.
    """
    path = Path(path)
    if "://" not in data_root:
        data_root = str(Path(data_root).expanduser().resolve())
    try:
        raw = OmegaConf.load(path)
        if not isinstance(raw, DictConfig):
            raise ConfigError(f"{path}: expected a mapping with keys name, uri, kind, ...")
        resolved = OmegaConf.to_container(
            OmegaConf.merge({"data_root": data_root}, raw), resolve=True
        )
        assert isinstance(resolved, dict)
        resolved.pop("data_root")
        source = cast(
            SourceConfig,
            OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SourceConfig), resolved)),
        )
    except OmegaConfBaseException as exc:
        raise config_error(exc, str(path)) from exc
    uri = source.uri
    if "://" not in uri:
        uri = str(Path(uri).expanduser().resolve())
    return SourceSpec.from_record(source, uri=uri)


def load_sources(config: SampleHubConfig) -> dict[str, SourceSpec]:
    """Every source file in ``config.sources_dir``, keyed by dataset name."""
    specs: dict[str, SourceSpec] = {}
    for path in sorted(Path(config.sources_dir or REPO_CONF_DIR / "sources").glob("*.yaml")):
        spec = load_source(path, config.data_root)
        if spec.name in specs:
            raise ConfigError(f"{path}: dataset name {spec.name!r} is used by two source files")
        specs[spec.name] = spec
    return specs
