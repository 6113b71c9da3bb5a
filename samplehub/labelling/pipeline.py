"""The offline labelling pipeline of one ``tiles`` dataset, stage by stage.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, Figure 1 and sections 2.2-2.8.
Each stage is one function (one Dagster asset) that reads the previous stage's files under
``<home>/labelling_work/<dataset>/`` and writes its own, so a stage re-runs alone:

1. :func:`fit_fcm_targets` (2.2): band standardization and fuzzy C-means centres, fitted on a
   uniform pixel subsample of the training chips -> ``fcm.npz``. Memberships are recomputed
   at full resolution from the centres wherever a stage needs them.
2. :func:`train_unet_model` (2.4): the U-Net on the training chips against their memberships,
   early stopping on a held-out share of the training chips (the test chips never tune
   anything); tracked in MLflow as ``labelling-unet-<dataset>``.
3. :func:`build_segment_graphs` (2.5): SLIC on RGB, mean U-Net activation maps per segment,
   8 geographic neighbours, mean memberships per segment -> ``graphs.npz``.
4. :func:`train_gnn_model` (2.6): GCN or GAT on the graphs; ``labelling-gnn-<dataset>``.
5. :func:`compute_chip_embeddings` (2.7-2.8): layer-2 node embeddings, Hungarian chip
   similarity (fast path, :func:`ml.labelling.matching.similarity_matrix_fast`), UMAP of the
   chips (precomputed metric) and of the segments -> ``embeddings.npz``, ``similarity.npz``,
   then the labelling page's view (:func:`samplehub.labelling.view.write_labelling_view`).

Chips are catalog samples; their pixels come from the image store. Seconds of each stage go
to ``timings.json`` (the per-stage table of the paper's Table 7).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.labelling.fcm import FuzzyCMeans
from ml.labelling.gnn import GNNTrainConfig, GraphNet, embed_graphs, train_gnn
from ml.labelling.graphs import SegmentGraph, build_graph
from ml.labelling.matching import similarity_matrix_fast
from ml.labelling.unet import UNet, UNetTrainConfig, train_unet, unet_outputs
from samplehub.config import LabellingConfig
from samplehub.errors import ConfigError, IndexNotTrainedError, LabellingError
from samplehub.labelling.tracking import load_champion, model_name, track_and_register
from samplehub.progress import progress_bar
from samplehub.repository import Repository

log = logging.getLogger(__name__)

WORK_DIR = "labelling_work"
FCM_FILE = "fcm.npz"
GRAPHS_FILE = "graphs.npz"
EMBEDDINGS_FILE = "embeddings.npz"
SIMILARITY_FILE = "similarity.npz"
TIMINGS_FILE = "timings.json"
RGB_BANDS = (("B04", "red"), ("B03", "green"), ("B02", "blue"))
CHIP_COLUMNS = ["sample_id", "relpath", "split", "bands", "zarr_array", "zarr_index"]
BATCH = 16


def work_dir(repo: Repository, dataset: str) -> Path:
    """``<home>/labelling_work/<dataset>``, created."""
    path = repo.config.home_path / WORK_DIR / dataset
    path.mkdir(parents=True, exist_ok=True)
    return path


def applies_to(repo: Repository, dataset: str) -> bool:
    """Whether ``dataset`` is one of ``labelling.datasets``."""
    return dataset in repo.config.labelling.datasets


def record_seconds(repo: Repository, dataset: str, stage: str, seconds: float) -> None:
    """Store one stage's wall time in ``timings.json`` (kept across stages)."""
    path = work_dir(repo, dataset) / TIMINGS_FILE
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[stage] = round(seconds, 3)
    path.write_text(json.dumps(timings, indent=2))


def _device(config: LabellingConfig) -> str:
    import torch

    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"labelling.device={config.device} but torch sees no GPU; set labelling.device=cpu"
        )
    return config.device


# --- chips ---------------------------------------------------------------------------------


@dataclass
class ChipSet:
    """The chips of a dataset in relpath order.

    Attributes:
        sample_ids: (N,) int64 catalog ids.
        relpaths: chip names.
        splits: (N,) ``train``/``test``.
        bands: band names of the images.
        images: (N, D, H, W) at the stored dtype.
    """

    sample_ids: np.ndarray
    relpaths: list[str]
    splits: np.ndarray
    bands: tuple[str, ...]
    images: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """Row numbers of the training chips."""
        return np.flatnonzero(self.splits != "test")


def load_chips(repo: Repository, dataset: str) -> ChipSet:
    """Every chip of ``dataset`` from the catalog and the image store.

    Raises:
        DatasetNotFoundError: ``dataset`` is not in the catalog.
        LabellingError: the chips differ in bands or size (not one ``tiles`` dataset).
    """
    rows = repo.catalog.samples(dataset, columns=CHIP_COLUMNS)
    rows = rows.sort_values("relpath").reset_index(drop=True)
    if rows.empty:
        raise LabellingError(f"dataset {dataset!r} has no samples; ingest it first")
    bands = {tuple(b) for b in rows["bands"]}
    if len(bands) != 1:
        raise LabellingError(
            f"dataset {dataset!r}: chips have different bands {sorted(bands)}; the labelling "
            "pipeline needs one band layout (a `tiles` source)"
        )
    store = repo.store.dataset(dataset)
    parts: dict[int, np.ndarray] = {}
    for array, group in rows.groupby("zarr_array", sort=True):
        pixels = store.images(str(array), group["zarr_index"].to_numpy())
        parts.update(zip(group.index.tolist(), pixels, strict=True))
    shapes = {p.shape for p in parts.values()}
    if len(shapes) != 1:
        raise LabellingError(f"dataset {dataset!r}: chips have different sizes {sorted(shapes)}")
    images = np.stack([parts[i] for i in range(len(rows))])
    splits = rows["split"].fillna("train").to_numpy().astype(str)
    return ChipSet(rows["sample_id"].to_numpy().astype(np.int64), rows["relpath"].tolist(),
                   splits, next(iter(bands)), images)


def holdout(rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit rows, validation rows) of ``rows``, at least one of each."""
    order = np.random.default_rng(seed).permutation(rows)
    n_val = min(max(1, round(fraction * len(rows))), len(rows) - 1)
    if n_val < 1:
        raise LabellingError(f"need at least two training chips, found {len(rows)}")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# --- stage 1: fuzzy C-means ------------------------------------------------------------------


@dataclass
class FcmTargets:
    """Band standardization, RGB stretch and fuzzy C-means centres of a dataset (``fcm.npz``).

    Attributes:
        mean: (D,) band means of the training pixels.
        std: (D,) band deviations.
        rgb: indices of the red, green and blue bands.
        rgb_low: (3,) 2nd percentile of each RGB band (mapped to 0).
        rgb_high: (3,) 98th percentile (mapped to 1).
        fcm: the fitted fuzzy C-means.
    """

    mean: np.ndarray
    std: np.ndarray
    rgb: np.ndarray
    rgb_low: np.ndarray
    rgb_high: np.ndarray
    fcm: FuzzyCMeans

    def standardize(self, images: np.ndarray) -> np.ndarray:
        """(N, D, H, W) -> float32 with zero mean, unit deviation per band."""
        x = (images.astype(np.float32) - self.mean[:, None, None]) / self.std[:, None, None]
        return x.astype(np.float32)  # type: ignore[no-any-return]

    def rgb_images(self, images: np.ndarray) -> np.ndarray:
        """(N, D, H, W) -> (N, H, W, 3) float in [0, 1], 2-98 percentile stretch."""
        rgb = images[:, self.rgb].astype(np.float32)
        low, high = self.rgb_low[:, None, None], self.rgb_high[:, None, None]
        return np.clip((rgb - low) / np.maximum(high - low, 1e-6), 0, 1).transpose(0, 2, 3, 1)  # type: ignore[no-any-return]

    def memberships(self, images: np.ndarray) -> np.ndarray:
        """Fuzzy C-means memberships (N, C, H, W) float32 at full resolution."""
        x = self.standardize(images)
        return np.stack([self.fcm.predict_image(chip) for chip in x])

    def save(self, path: Path) -> None:
        """Write ``fcm.npz``."""
        assert self.fcm.centers is not None
        np.savez(path, mean=self.mean, std=self.std, rgb=self.rgb, rgb_low=self.rgb_low,
                 rgb_high=self.rgb_high, centers=self.fcm.centers, m=self.fcm.m)

    @classmethod
    def load(cls, path: Path) -> FcmTargets:
        """Read ``fcm.npz``.

        Raises:
            IndexNotTrainedError: the file is missing (``fcm_targets`` has not run).
        """
        if not path.is_file():
            raise IndexNotTrainedError(f"{path} is missing; materialize fcm_targets first")
        with np.load(path) as z:
            a = {key: z[key] for key in z.files}
        fcm = FuzzyCMeans(n_clusters=len(a["centers"]), m=float(a["m"]), centers=a["centers"])
        return cls(a["mean"], a["std"], a["rgb"], a["rgb_low"], a["rgb_high"], fcm)


def rgb_indices(bands: tuple[str, ...]) -> np.ndarray:
    """Indices of red, green, blue among ``bands`` (Sentinel-2 names or plain colour names).

    Raises:
        LabellingError: a colour is missing (SLIC runs on RGB, section 2.5).
    """
    lower = [b.lower() for b in bands]
    out = []
    for s2, colour in RGB_BANDS:
        if s2.lower() in lower:
            out.append(lower.index(s2.lower()))
        elif colour in lower:
            out.append(lower.index(colour))
        else:
            raise LabellingError(f"bands {list(bands)} have no {colour} band ({s2}) for SLIC")
    return np.array(out)


@dataclass
class StageReport:
    """What one stage did (asset metadata)."""

    dataset: str
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)


def fit_fcm_targets(repo: Repository, dataset: str) -> StageReport:
    """Stage 1 (section 2.2): fit FCM on a uniform pixel subsample of the training chips."""
    start = time.perf_counter()
    cfg = repo.config.labelling
    chips = load_chips(repo, dataset)
    train = chips.images[chips.train]
    d = train.shape[1]
    rng = np.random.default_rng(cfg.seed)
    flat = train.transpose(1, 0, 2, 3).reshape(d, -1)
    picks = rng.choice(flat.shape[1], min(cfg.fcm_samples, flat.shape[1]), replace=False)
    sample = flat[:, np.sort(picks)].T.astype(np.float64)
    rgb = rgb_indices(chips.bands)
    targets = FcmTargets(
        mean=sample.mean(0).astype(np.float32), std=(sample.std(0) + 1e-6).astype(np.float32),
        rgb=rgb, rgb_low=np.percentile(sample[:, rgb], 2, axis=0).astype(np.float32),
        rgb_high=np.percentile(sample[:, rgb], 98, axis=0).astype(np.float32),
        fcm=FuzzyCMeans(cfg.clusters, cfg.fuzzifier, cfg.fcm_max_iter,
                        max_samples=cfg.fcm_samples, seed=cfg.seed),
    )
    targets.fcm.fit((sample - targets.mean) / targets.std)
    targets.save(work_dir(repo, dataset) / FCM_FILE)
    shares = targets.fcm.predict((sample - targets.mean) / targets.std).mean(0)
    seconds = time.perf_counter() - start
    record_seconds(repo, dataset, "fcm", seconds)
    return StageReport(dataset, seconds, {
        "clusters": cfg.clusters, "fuzzifier": cfg.fuzzifier, "iterations": targets.fcm.n_iter,
        "fit_pixels": len(sample), "chips": len(chips.sample_ids),
        "train_chips": len(chips.train),
        "cluster_shares": [round(float(s), 4) for s in shares]})


# --- stage 2: U-Net --------------------------------------------------------------------------


def train_unet_model(repo: Repository, dataset: str) -> StageReport:
    """Stage 2 (section 2.4): train, track and register the U-Net of ``dataset``."""
    start = time.perf_counter()
    cfg = repo.config.labelling
    device = _device(cfg)
    chips = load_chips(repo, dataset)
    targets = FcmTargets.load(work_dir(repo, dataset) / FCM_FILE)
    fit, val = holdout(chips.train, cfg.val_fraction, cfg.seed)
    x = targets.standardize(chips.images)
    y = targets.memberships(chips.images)
    config = UNetTrainConfig(width=cfg.unet_width, epochs=cfg.unet_epochs,
                             patience=cfg.unet_patience, batch_size=cfg.unet_batch_size,
                             lr=cfg.unet_lr, noise=cfg.noise, seed=cfg.seed, device=device)
    result = train_unet(x[fit], y[fit], x[val], y[val], config,
                        on_epoch=lambda row: log.info("unet %s", row))
    params = {**vars(config), "in_channels": x.shape[1], "clusters": y.shape[1],
              "train_chips": len(fit), "val_chips": len(val), "chip_size": x.shape[-1]}
    tracked = track_and_register(
        repo.config, model_name("unet", dataset), result.model, params, result.history,
        {"val_loss": result.val_loss, "best_epoch": float(result.best_epoch),
         "train_seconds": result.seconds},
        {"dataset": dataset, "device": device, "stage": "unet"})
    seconds = time.perf_counter() - start
    record_seconds(repo, dataset, "unet_train", seconds)
    return StageReport(dataset, seconds, {
        "model_version": tracked.model_version, "run_id": tracked.run_id,
        "val_loss": round(result.val_loss, 4), "best_epoch": result.best_epoch,
        "epochs": len(result.history), "width": cfg.unet_width, "device": device,
        "train_chips": len(fit), "val_chips": len(val)})


# --- stage 3: segment graphs -----------------------------------------------------------------


@dataclass
class GraphSet:
    """Every chip's segment graph (``graphs.npz``), in :func:`load_chips` order.

    Attributes:
        sample_ids: (N,) chip ids.
        splits: (N,) train/test.
        graphs: one :class:`~ml.labelling.graphs.SegmentGraph` per chip.
        unet_version: the U-Net whose activation maps are the node features.
    """

    sample_ids: np.ndarray
    splits: np.ndarray
    graphs: list[SegmentGraph]
    unet_version: str

    def save(self, path: Path) -> None:
        """Write ``graphs.npz`` (node arrays concatenated, offsets beside)."""
        gs = self.graphs
        np.savez(
            path, sample_ids=self.sample_ids, splits=self.splits,
            labels=np.stack([g.labels for g in gs]),
            nodes=np.cumsum([0] + [g.n_nodes for g in gs]),
            edges=np.cumsum([0] + [g.edge_index.shape[1] for g in gs]),
            x=np.concatenate([g.x for g in gs]), target=np.concatenate([g.target for g in gs]),
            centroids=np.concatenate([g.centroids for g in gs]),
            edge_index=np.concatenate([g.edge_index for g in gs], axis=1),
            unet_version=np.array(self.unet_version),
        )

    @classmethod
    def load(cls, path: Path) -> GraphSet:
        """Read ``graphs.npz``.

        Raises:
            IndexNotTrainedError: missing (``segment_graphs`` has not run).
        """
        if not path.is_file():
            raise IndexNotTrainedError(f"{path} is missing; materialize segment_graphs first")
        with np.load(path) as z:  # each key read once: NpzFile decompresses on every access
            a = {key: z[key] for key in z.files}
        nodes, edges = a["nodes"], a["edges"]
        graphs = [
            SegmentGraph(a["labels"][i], a["x"][nodes[i] : nodes[i + 1]],
                         a["edge_index"][:, edges[i] : edges[i + 1]],
                         a["centroids"][nodes[i] : nodes[i + 1]],
                         a["target"][nodes[i] : nodes[i + 1]])
            for i in range(len(nodes) - 1)
        ]
        return cls(a["sample_ids"], a["splits"], graphs, str(a["unet_version"]))


def build_segment_graphs(repo: Repository, dataset: str, progress: bool = False) -> StageReport:
    """Stage 3 (section 2.5): SLIC, U-Net node features and geographic edges of every chip."""
    start = time.perf_counter()
    cfg = repo.config.labelling
    device = _device(cfg)
    chips = load_chips(repo, dataset)
    work = work_dir(repo, dataset)
    targets = FcmTargets.load(work / FCM_FILE)
    tracked, unet = load_champion(repo.config, model_name("unet", dataset), repo.models)
    if not isinstance(unet, UNet):
        raise LabellingError(f"{tracked.model_version} is not a U-Net")
    graphs: list[SegmentGraph] = []
    unet_seconds = slic_seconds = 0.0
    with progress_bar(f"graphs {dataset}", len(chips.sample_ids), "chip", progress) as bar:
        for s in range(0, len(chips.sample_ids), BATCH):
            images = chips.images[s : s + BATCH]
            t0 = time.perf_counter()
            _, maps = unet_outputs(unet, targets.standardize(images), BATCH, device)
            t1 = time.perf_counter()
            memberships = targets.memberships(images)
            for rgb, fmap, memb in zip(targets.rgb_images(images), maps, memberships,
                                       strict=True):
                graphs.append(build_graph(rgb, fmap, memb, cfg.n_segments, cfg.k_neighbours,
                                          cfg.compactness))
            unet_seconds += t1 - t0
            slic_seconds += time.perf_counter() - t1
            bar.update(len(images))
    GraphSet(chips.sample_ids, chips.splits, graphs, tracked.model_version).save(
        work / GRAPHS_FILE)
    seconds = time.perf_counter() - start
    record_seconds(repo, dataset, "unet_features", unet_seconds)
    record_seconds(repo, dataset, "segmentation_and_graphs", slic_seconds)
    sizes = np.array([g.n_nodes for g in graphs])
    return StageReport(dataset, seconds, {
        "chips": len(graphs), "unet_version": tracked.model_version,
        "mean_segments": round(float(sizes.mean()), 1), "min_segments": int(sizes.min()),
        "max_segments": int(sizes.max()), "feature_dim": int(graphs[0].x.shape[1]),
        "unet_seconds": round(unet_seconds, 2), "slic_graph_seconds": round(slic_seconds, 2)})


# --- stage 4: GNN ----------------------------------------------------------------------------


def train_gnn_model(repo: Repository, dataset: str, kind: str | None = None) -> StageReport:
    """Stage 4 (section 2.6): train, track and register the GCN/GAT of ``dataset``."""
    start = time.perf_counter()
    cfg = repo.config.labelling
    device = _device(cfg)
    kind = kind or cfg.gnn
    gset = GraphSet.load(work_dir(repo, dataset) / GRAPHS_FILE)
    train = np.flatnonzero(gset.splits != "test")
    fit, val = holdout(train, cfg.val_fraction, cfg.seed)
    arrays = [(g.x, g.edge_index, g.target) for g in gset.graphs]
    config = GNNTrainConfig(kind=kind, epochs=cfg.gnn_epochs, patience=cfg.gnn_patience,
                            graphs_per_batch=cfg.graphs_per_batch, lr=cfg.gnn_lr, seed=cfg.seed,
                            device=device)
    result = train_gnn([arrays[i] for i in fit], [arrays[i] for i in val], config)
    params = {**vars(config), "clusters": arrays[0][2].shape[1], "feature_dim":
              arrays[0][0].shape[1], "train_chips": len(fit), "val_chips": len(val),
              "unet_version": gset.unet_version}
    tracked = track_and_register(
        repo.config, model_name("gnn", dataset), result.model, params, result.history,
        {"val_loss": result.val_loss, "best_epoch": float(result.best_epoch),
         "train_seconds": result.seconds},
        {"dataset": dataset, "device": device, "stage": "gnn", "kind": kind})
    seconds = time.perf_counter() - start
    record_seconds(repo, dataset, "gnn_train", seconds)
    return StageReport(dataset, seconds, {
        "model_version": tracked.model_version, "kind": kind, "run_id": tracked.run_id,
        "val_loss": round(result.val_loss, 4), "best_epoch": result.best_epoch,
        "epochs": len(result.history), "device": device})


# --- stage 5: chip and segment embeddings ----------------------------------------------------


def chip_umap(S: np.ndarray, cfg: LabellingConfig) -> np.ndarray:
    """UMAP (precomputed distance 1 - S) of the chips: (N, 2) float32 (section 2.8)."""
    import umap

    n = len(S)
    D = np.clip(1.0 - S, 0.0, None)
    np.fill_diagonal(D, 0.0)
    reducer = umap.UMAP(n_neighbors=max(2, min(cfg.umap_neighbors, n - 1)), metric="precomputed",
                        min_dist=cfg.umap_min_dist, random_state=cfg.seed, init="random")
    return reducer.fit_transform(D).astype(np.float32)  # type: ignore[no-any-return]


def segment_umap(E: np.ndarray, cfg: LabellingConfig, block: int = 4096) -> np.ndarray:
    """UMAP (cosine) of node embeddings (n, D) -> (n, 2) float32 (section 2.8).

    Fitted on a seeded draw of ``labelling.segment_umap_fit`` nodes; every other node is
    placed at the mean position of its 5 most cosine-similar fitted nodes (UMAP's own
    ``transform`` is far slower for hundreds of thousands of segments).
    """
    import umap

    from ml.labelling.matching import normalise_rows

    rng = np.random.default_rng(cfg.seed)
    fit = np.sort(rng.choice(len(E), min(cfg.segment_umap_fit, len(E)), replace=False))
    reducer = umap.UMAP(n_neighbors=max(2, min(cfg.umap_neighbors, len(fit) - 1)),
                        metric="cosine", min_dist=cfg.umap_min_dist, random_state=cfg.seed)
    out = np.empty((len(E), 2), np.float32)
    out[fit] = reducer.fit_transform(E[fit])
    rest = np.setdiff1d(np.arange(len(E)), fit)
    U = normalise_rows(E).astype(np.float32)
    k = min(5, len(fit))
    for s in range(0, len(rest), block):
        rows = rest[s : s + block]
        near = np.argpartition(-(U[rows] @ U[fit].T), k - 1, axis=1)[:, :k]
        out[rows] = out[fit][near].mean(axis=1)
    return out


def compute_chip_embeddings(
    repo: Repository, dataset: str, progress: bool = False
) -> StageReport:
    """Stage 5 (sections 2.7-2.8): embeddings, chip similarity, UMAP, the labelling view."""
    from samplehub.labelling.view import write_labelling_view

    start = time.perf_counter()
    cfg = repo.config.labelling
    work = work_dir(repo, dataset)
    gset = GraphSet.load(work / GRAPHS_FILE)
    tracked, gnn = load_champion(repo.config, model_name("gnn", dataset), repo.models)
    if not isinstance(gnn, GraphNet):
        raise LabellingError(f"{tracked.model_version} is not a GCN/GAT")
    t = time.perf_counter()
    embeddings = embed_graphs(gnn, [(g.x, g.edge_index) for g in gset.graphs])
    gnn_seconds = time.perf_counter() - t
    fast = similarity_matrix_fast(embeddings, k=cfg.umap_neighbors, extra=cfg.match_extra,
                                  workers=cfg.workers, max_exact=cfg.match_max_exact,
                                  clusters=cfg.match_clusters, seed=cfg.seed)
    t = time.perf_counter()
    xy = chip_umap(fast.S, cfg)
    E = np.concatenate(embeddings)
    seg_xy = segment_umap(E, cfg)
    umap_seconds = time.perf_counter() - t
    offsets = np.cumsum([0] + [len(e) for e in embeddings])
    np.savez(work / EMBEDDINGS_FILE, embeddings=E, offsets=offsets, sample_ids=gset.sample_ids,
             chip_xy=xy, segment_xy=seg_xy, gnn_version=np.array(tracked.model_version))
    np.savez(work / SIMILARITY_FILE, S=fast.S, solved=fast.solved, sample_ids=gset.sample_ids)
    ids = [str(int(i)) for i in gset.sample_ids]
    chips = pd.DataFrame({"sample_id": ids, "x": xy[:, 0], "y": xy[:, 1]})
    segments = pd.DataFrame({
        "sample_id": np.repeat(ids, np.diff(offsets)),
        "segment": np.concatenate([np.arange(len(e), dtype=np.int32) for e in embeddings]),
        "x": seg_xy[:, 0], "y": seg_xy[:, 1]})
    masks = {sid: g.labels.astype(np.int32) for sid, g in zip(ids, gset.graphs, strict=True)}
    view = write_labelling_view(repo.config.home_path, dataset, chips, segments, masks)
    seconds = time.perf_counter() - start
    record_seconds(repo, dataset, "gnn_inference", gnn_seconds)
    record_seconds(repo, dataset, "hungarian", fast.seconds)
    record_seconds(repo, dataset, "umap", umap_seconds)
    return StageReport(dataset, seconds, {
        "gnn_version": tracked.model_version, "chips": len(ids), "segments": len(E),
        "hungarian_seconds": round(fast.seconds, 2), "assignments": fast.n_exact,
        "transport_bounds": fast.n_bounds,
        "pairs": fast.n_pairs, "refinement_rounds": fast.rounds,
        "umap_seconds": round(umap_seconds, 2), "view": str(view)})
