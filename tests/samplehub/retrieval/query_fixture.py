"""A tiny seeded repository for the query tests (fixture ``built`` in conftest.py), built
with the real catalog, label-graph
store, features table, index lifecycle and prototype code in a temporary SAMPLEHUB_HOME.

Two datasets, 64-d features around one random unit centre per label:

* ``alpha`` (aerial, near 10E 50N, 2020): River 40, Bridge 40, Forest 40, of which the
  last 10 Forest samples look like bridges (features around the bridge centre);
* ``beta`` (sentinel2, near 100W 40N, 2022): Rivers 30, Highway 30.

Label graph: unified ``river``, ``bridge``, ``forest``, ``highway``, ``water``;
``alpha/River`` and ``beta/Rivers`` map to ``river``; ``river`` IS_A ``water`` (score 0.9,
parent distance 1/0.9) and co-occurs with ``bridge`` (weight 0.8, distance 1.25).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import shapely

from samplehub.catalog import schema
from samplehub.feature_store import feature_table
from samplehub.index.lifecycle import update_ivfpq_index
from samplehub.labels.graph import CO_OCCURS, IS_A, MAPS_TO, LabelGraph
from samplehub.labels.store import EmbeddedLabelGraphStore
from samplehub.models.feature_model import model_version
from samplehub.repository import Repository
from samplehub.retrieval.prototypes import compute_prototypes

D = 64
LOOKALIKES = 10
DATASETS = {
    # dataset: (sensor, (lon, lat), year, {label: count})
    "alpha": ("aerial", (10.0, 50.0), 2020, {"River": 40, "Bridge": 40, "Forest": 40}),
    "beta": ("sentinel2", (-100.0, 40.0), 2022, {"Rivers": 30, "Highway": 30}),
}
UNIFIED = {"River": "river", "Rivers": "river", "Bridge": "bridge", "Forest": "forest",
           "Highway": "highway"}


@dataclass
class Fixture:
    """The built repository and what the tests compare against."""

    repo: Repository
    frame: dict[str, np.ndarray]  # sample_id, dataset, label, lookalike per row
    centres: dict[str, np.ndarray]


def label_graph() -> LabelGraph:
    """The hand-made graph of the module docstring."""
    graph = LabelGraph()
    for name in ("river", "bridge", "forest", "highway", "water"):
        graph.add_label(name, name, "base")
    for dataset, (_, _, _, labels) in DATASETS.items():
        for name in labels:
            graph.add_label(f"{dataset}/{name}", name, "dataset", dataset=dataset)
            graph.add_edge(f"{dataset}/{name}", UNIFIED[name], MAPS_TO, score=1.0)
    graph.add_edge("river", "water", IS_A, score=0.9)
    graph.add_edge("river", "bridge", CO_OCCURS, key="CO_OCCURS:t", count=8, weight=0.8,
                   evidence="t")
    return graph


def sample_rows(rng: np.random.Generator) -> tuple[list[dict], list[str], list[bool]]:
    """Catalog rows, the unified label whose centre each row's feature is drawn around,
    and whether the row is a bridge look-alike."""
    rows, centres, lookalike = [], [], []
    for dataset, (sensor, (lon, lat), year, labels) in DATASETS.items():
        for name, count in labels.items():
            for i in range(count):
                x, y = lon + rng.uniform(-1, 1), lat + rng.uniform(-1, 1)
                relpath = f"{name}/{i:03d}.png"
                rows.append({
                    "sample_id": 1_000 + 7 * len(rows),
                    "dataset": dataset, "relpath": relpath, "uri": f"/data/{dataset}/{relpath}",
                    "labels": [name], "label_path": [name], "unified_labels": [],
                    "sensor": sensor, "georeferenced": True,
                    "minx": x, "miny": y, "maxx": x + 0.01, "maxy": y + 0.01,
                    "footprint": shapely.box(x, y, x + 0.01, y + 0.01).wkb,
                    "time": datetime(year, 6, 1, tzinfo=UTC),
                })
                is_lookalike = name == "Forest" and i >= count - LOOKALIKES
                centres.append("bridge" if is_lookalike else UNIFIED[name])
                lookalike.append(is_lookalike)
    return rows, centres, lookalike


def build(home: Path, monkeypatch: pytest.MonkeyPatch) -> Fixture:
    """Write the catalog, graph, features, index and prototypes under ``home``."""
    from samplehub.hilbert import hilbert_key

    monkeypatch.setenv("SAMPLEHUB_HOME", str(home))
    repo = Repository.open()
    rng = np.random.default_rng(0)
    rows, centre_of, lookalike = sample_rows(rng)
    lon = np.array([(r["minx"] + r["maxx"]) / 2 for r in rows])
    lat = np.array([(r["miny"] + r["maxy"]) / 2 for r in rows])
    for row, key in zip(rows, hilbert_key(lon, lat).tolist(), strict=True):
        row["hilbert"] = key
    repo.catalog.append("samples", pa.Table.from_pylist(rows, schema=schema.SAMPLES))
    EmbeddedLabelGraphStore(repo.config.home_path).commit(label_graph(), "test graph")
    centres = {n: unit(rng.standard_normal(D)) for n in ("river", "bridge", "forest", "highway")}
    noise = rng.standard_normal((len(rows), D)) / np.sqrt(D)
    xb = unit(np.stack([centres[c] for c in centre_of]) + 0.35 * noise)
    version = model_version(repo.config)
    ids = np.array([r["sample_id"] for r in rows])
    datasets = np.array([r["dataset"] for r in rows])
    for dataset in DATASETS:
        keep = datasets == dataset
        repo.catalog.append("features", feature_table(ids[keep], dataset, version, xb[keep]))
    update_ivfpq_index(repo)
    compute_prototypes(repo)
    frame = {
        "sample_id": ids,
        "dataset": datasets,
        "label": np.array([r["labels"][0] for r in rows]),
        "lookalike": np.array(lookalike),
        "lon": lon,
        "lat": lat,
    }
    return Fixture(repo, frame, centres)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
