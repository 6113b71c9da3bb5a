"""Hash codes that serve the whole catalog: DMCH trained on one dataset against the catalog.

Claim: DMCH trained on every catalogued dataset, classed by the label graph's unified
labels (``hashing.dmch_dataset: "*"``, :func:`samplehub.models.hash_model.catalog_features`),
makes the Hamming index's supplementary samples as right as IVF-PQ's; DMCH trained on one
dataset (UC Merced, the earlier default) codes the other datasets' images with classes it
never saw.

Data (``data: real``): the home of ``bench/assembled.py`` (EuroSAT RGB 27,000, UC Merced
2,100 and its multi-label annotation, ingested, encoded, merged and indexed by the shipped
jobs; run ``python bench/assembled.py --setup-only`` first), copied per arm to
``bench/.cache/hash_catalog/<arm>`` so that each arm has its own MLflow registry (the
pixel store is linked, not copied: nothing here reads pixels).

Per arm, with the shipped ``hashing`` settings but the training set: ``train_hash_model``
(DMCH, 64 bits, 50 epochs), ``compute_hash_codes`` for every dataset and
``update_hash_index``, then, one client:

* ``comparison``: :func:`~samplehub.retrieval.comparison.measure_index_comparison`, the
  planner's own measurement (200 labelled probe samples the hash model did not train on,
  k = 100): mAP@100 by label (relevant: shares a catalog label), recall@100 against exact
  search and p50 latency, of the Hamming index and of IVF-PQ, query by query in turns;
* ``supplementary``: the ten common labels of ``bench/supplementary.py``, each queried with
  ``index="hash"`` and with ``index="ivfpq"`` (up to 200 supplementary samples); the
  supplementary samples scored as ``bench/supplementary.py`` scores them, against the UC
  Merced multi-label annotation (a UC Merced image is predicted when any copy of it is a
  supplementary sample), with every label counted (no prediction: precision 0); and, per
  label, the source labels of the top 100 supplementary samples.

Writes ``bench/results/hash_catalog.json``. Run: ``python bench/hash_catalog.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from assembled import HOME, overrides
from common import REPO, SHARED_DATA, machine, require_data, write_json
from query import COMMON_LABELS
from supplementary import image_name, read_annotation, score_images, summary

if TYPE_CHECKING:
    from samplehub.repository import Repository

HOMES = REPO / "bench" / ".cache" / "hash_catalog"
ARMS = {"one_dataset": "ucmerced", "catalog": "*"}
K = 200
TOP = 100
TRAINED = "trained.json"


def arm_home(arm: str) -> Path:
    """A fresh copy of the assembled bench's home for ``arm`` (its pixel store linked).

    A copy whose training finished (``trained.json``) is kept: its models are what the
    measurements need.
    """
    home = HOMES / arm
    if (home / TRAINED).exists():
        return home
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(HOME, home, ignore=shutil.ignore_patterns("zarr", "locks", "mlflow.db",
                                                              "mlartifacts"))
    os.symlink(HOME / "zarr", home / "zarr")
    return home


def train_and_index(repo: Repository) -> dict[str, Any]:
    """DMCH on the configured training set, codes for every dataset, the Hamming index."""
    from samplehub.index.hamming import compute_hash_codes, update_hash_index
    from samplehub.models.hash_model import train_hash_model

    start = time.perf_counter()
    trained = train_hash_model(repo, "dmch")
    train_s = time.perf_counter() - start
    datasets = repo.catalog.datasets()["dataset"].tolist()
    for dataset in datasets:
        compute_hash_codes(repo, dataset)
    update = update_hash_index(repo)
    return {"dataset": trained.dataset, "samples": trained.samples,
            "val_map": round(trained.val_map, 4), "train_s": round(train_s, 1),
            "indexed": update.ntotal, "index": update.kind}


def comparison(repo: Repository) -> dict[str, Any]:
    """The planner's measurement of the Hamming index against IVF-PQ on this catalog."""
    from samplehub.index.lifecycle import load_ivfpq_index
    from samplehub.models.feature_model import model_version
    from samplehub.retrieval.comparison import measure_index_comparison

    ivfpq = load_ivfpq_index(repo, model_version(repo.config))
    measured = measure_index_comparison(repo, ivfpq)
    return {} if measured is None else measured.as_dict()


def supplementary(repo: Repository, annotation: dict[str, set[str]]) -> dict[str, Any]:
    """The ten common labels through the Hamming index and through IVF-PQ."""
    from samplehub.retrieval.query import run_query
    from samplehub.retrieval.types import QuerySpec

    samples = repo.catalog.read("samples", columns=["sample_id", "dataset", "relpath",
                                                    "labels"]).to_pandas()
    ucm = samples[samples["dataset"].isin(["ucmerced", "ucmerced_multilabel"])]
    # copies of one image share its name, so a hit on either copy predicts the image
    names = {int(s): image_name(str(r)) for s, r in zip(ucm["sample_id"], ucm["relpath"],
                                                        strict=True)}
    source = {int(s): f"{d}:{'+'.join(ls)}" for s, d, ls in zip(
        samples["sample_id"], samples["dataset"], samples["labels"], strict=True)}
    out: dict[str, Any] = {}
    for index in ("hash", "ivfpq"):
        rows, sources, latency = [], {}, []
        for label in COMMON_LABELS:
            run_query(repo, QuerySpec(labels=(label,), k=K, index=index))  # the label's memos
            start = time.perf_counter()
            result = run_query(repo, QuerySpec(labels=(label,), k=K, index=index))
            latency.append((time.perf_counter() - start) * 1000)
            exact, found = ({names[h.sample_id] for h in hits if h.sample_id in names}
                            for hits in (result.exact, result.supplementary))
            rows.append({
                **score_images(label, exact, found, annotation),
                "supplementary": len(result.supplementary),
                "supplementary_eurosat": sum(h.dataset == "eurosat"
                                             for h in result.supplementary)})
            sources[label] = dict(Counter(
                source[h.sample_id] for h in result.supplementary[:TOP]).most_common(5))
        out[index] = {"labels": rows, **summary(rows), "top_sources": sources,
                      "query_p50_ms": round(float(np.median(latency)), 2)}
    return out


def main() -> None:
    """Both arms: train, code, index, measure; write ``bench/results/hash_catalog.json``."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    data = require_data("eurosat_rgb", "ucmerced", "ucmerced_multilabel")
    if not (HOME / "built.json").exists():
        raise SystemExit(f"{HOME} is not built: run python bench/assembled.py --setup-only")
    from samplehub.repository import Repository

    annotation = read_annotation(data / "ucmerced_multilabel" / "LandUse_Multilabeled.txt")
    rows = []
    for arm, dataset in ARMS.items():
        home = arm_home(arm)
        repo = Repository.open([*overrides(home), f"hashing.dmch_dataset={dataset}"])
        if not (home / TRAINED).exists():
            (home / TRAINED).write_text(json.dumps(train_and_index(repo)))
        row = {"arm": arm, "training": json.loads((home / TRAINED).read_text())}
        print(row, flush=True)
        row["comparison"] = comparison(repo)
        row["supplementary"] = supplementary(repo, annotation)
        row["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        rows.append(row)
    write_json("hash_catalog.json", {
        "machine": machine(), "data": "real", "clients": 1,
        "catalog": {"home": str(HOME.relative_to(REPO)), "data_root": str(SHARED_DATA)},
        "k": K, "arms": rows,
    })


if __name__ == "__main__":
    main()
