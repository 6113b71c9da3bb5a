"""Label prototypes: K-means centres of each label's image features (main paper, 3.4.2).

Section 3.4.2 of ``../shared/papers/sample-repository-label-semantics-visual-retrieval.txt``
"maintain[s] several feature cluster centers for each label category"; the query's third
step matches an associated label's centres against the feature index. Here each label
gets up to ``config.retrieval.prototypes_per_label`` spherical K-means centres (unit norm,
so inner product with the index's unit-norm features is cosine similarity).

Labels and keys (the names the label graph gives them, :mod:`samplehub.labels.graph`):

* a dataset's own (original) label is keyed ``<dataset>/<name>`` (``ucmerced/river``); its
  members are the dataset's samples carrying it;
* a unified label is keyed by its name (``river``); its members are the samples of every
  dataset label that ``MAPS_TO`` it in the latest label graph, plus samples whose
  catalog ``unified_labels`` name it. Without a label graph only original labels exist.

Storage contract: the Delta table ``prototypes`` (partitioned by ``model_version``) holds
``label, prototype_id, vector, n_members, model_version, computed_at``; one run replaces
the rows of its model version atomically. :func:`load_prototypes` reads them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from samplehub.catalog import Catalog
from samplehub.catalog import schema as catalog_schema
from samplehub.catalog.delta import sql_literal
from samplehub.catalog.vectors import vector_column, vector_rows
from samplehub.feature_store import load_features
from samplehub.labels.settings import graph_settings_from_config
from samplehub.labels.workflow import open_store
from samplehub.models.feature_model import model_version as current_model_version
from samplehub.repository import Repository

KMEANS_ITERATIONS = 20


@dataclass
class LabelPrototypes:
    """The prototypes of one label.

    Attributes:
        vectors: unit-norm centres (k, D) float32; row i is ``prototype_id`` i.
        n_members: members assigned to each centre (k,).
    """

    vectors: np.ndarray
    n_members: np.ndarray


def load_prototypes(
    catalog: Catalog, model_version: str, labels: list[str] | None = None
) -> dict[str, LabelPrototypes]:
    """Stored prototypes of a model version, keyed by label (module docstring).

    Args:
        catalog: the catalog holding the ``prototypes`` table.
        model_version: the feature model version.
        labels: only these keys; None reads every label.

    Returns:
        ``{label: LabelPrototypes}``; labels without prototypes are absent.
    """
    expression = pc.field("model_version") == model_version
    if labels is not None:
        expression = expression & pc.field("label").isin(labels)
    table = catalog.read(
        "prototypes",
        columns=["label", "prototype_id", "vector", "n_members"],
        filter_expression=expression,
    ).sort_by([("label", "ascending"), ("prototype_id", "ascending")])
    out: dict[str, LabelPrototypes] = {}
    if table.num_rows == 0:
        return out
    xb = vector_rows(table.column("vector"))
    names = np.asarray(table.column("label").to_pylist(), dtype=object)
    counts = table.column("n_members").to_numpy()
    for name in dict.fromkeys(names):
        rows = names == name
        out[str(name)] = LabelPrototypes(xb[rows], counts[rows])
    return out


def label_members(repo: Repository) -> dict[str, np.ndarray]:
    """Sample ids of each original and unified label (keys as in the module docstring)."""
    samples = repo.catalog.read("samples", columns=["sample_id", "dataset", "labels",
                                                    "unified_labels"]).to_pandas()
    members: dict[str, set[int]] = defaultdict(set)
    for sample_id, dataset, labels, unified in samples.itertuples(index=False):
        for label in labels:
            members[f"{dataset}/{label}"].add(int(sample_id))
        for label in unified if unified is not None else []:
            members[str(label)].add(int(sample_id))
    store = open_store(graph_settings_from_config(repo.config), repo.config.home_path)
    if store.versions():
        graph = store.load()
        for label_id in graph.labels("dataset"):
            target = graph.mapped_to(label_id)
            if target is not None and label_id in members:
                members[graph.name_of(target)] |= members[label_id]
    return {label: np.fromiter(ids, np.int64) for label, ids in sorted(members.items())}


def kmeans_prototypes(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spherical K-means of ``x`` (n, D): ``min(k, n)`` unit-norm centres and member counts.

    Args:
        x: member features (n, D), n >= 1.
        k: wanted centres.
        seed: K-means seed.

    Returns:
        Centres (k', D) float32, ordered by falling member count, and counts (k',).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = min(k, len(x))
    kmeans = faiss.Kmeans(
        x.shape[1], k, niter=KMEANS_ITERATIONS, seed=seed, spherical=True,
        min_points_per_centroid=1, max_points_per_centroid=1 << 16,
    )
    kmeans.train(x)
    _, assignment = kmeans.index.search(x, 1)
    counts = np.bincount(assignment[:, 0], minlength=k)
    order = np.argsort(-counts, kind="stable")
    centroids = np.asarray(kmeans.centroids)  # set by train()
    return centroids[order], counts[order]


@dataclass
class PrototypeReport:
    """What one prototype run did.

    Attributes:
        model_version: the feature model version.
        labels: labels with prototypes.
        prototypes: prototype rows written.
        skipped: labels none of whose samples has features yet.
        seconds: wall time.
    """

    model_version: str
    labels: int
    prototypes: int
    skipped: int
    seconds: float


def compute_prototypes(repo: Repository, model_version: str | None = None) -> PrototypeReport:
    """K-means prototypes of every label's features, replacing the model version's rows.

    Args:
        repo: the repository (``config.retrieval.prototypes_per_label`` centres per label).
        model_version: None uses the current model version.

    Returns:
        Counts and seconds.
    """
    start = time.perf_counter()
    version = model_version or current_model_version(repo.config)
    ids, xb = load_features(repo.catalog, version)
    k = repo.config.retrieval.prototypes_per_label
    rows: list[dict[str, object]] = []
    skipped = 0
    for label, members in label_members(repo).items():
        found = np.flatnonzero(np.isin(ids, members))  # rows of members with features
        if not len(found):
            skipped += 1
            continue
        centres, counts = kmeans_prototypes(xb[found], k)
        rows.extend(
            {"label": label, "prototype_id": i, "vector": centre, "n_members": int(count)}
            for i, (centre, count) in enumerate(zip(centres, counts, strict=True))
        )
    write_prototypes(repo.catalog, version, rows)
    labels = len({r["label"] for r in rows})
    return PrototypeReport(version, labels, len(rows), skipped, time.perf_counter() - start)


def write_prototypes(catalog: Catalog, model_version: str, rows: list[dict[str, object]]) -> None:
    """Replace the ``prototypes`` rows of ``model_version`` in one Delta commit."""
    now = datetime.now(UTC)
    schema = catalog_schema.PROTOTYPES
    at = schema.get_field_index("vector")
    xb = np.stack([np.asarray(r["vector"]) for r in rows]) if rows else np.zeros((0, 0))
    data = pa.Table.from_pylist(
        [{**r, "model_version": model_version, "computed_at": now} for r in rows],
        schema=schema.remove(at),
    ).add_column(at, schema.field("vector"), vector_column(xb))
    options = catalog.storage_options or None
    if catalog.table("prototypes") is None:
        write_deltalake(catalog.uri("prototypes"), data, partition_by=["model_version"],
                        mode="append", storage_options=options)
        return
    write_deltalake(
        catalog.uri("prototypes"),
        data,
        partition_by=["model_version"],
        mode="overwrite",
        predicate=f"model_version = {sql_literal(model_version)}",
        storage_options=options,
    )
