"""Supplementary-sample retrieval quality on UC Merced + EuroSAT (main paper, section 4.3.2).

Protocol (paper 4.3.2, Table 4): query each of ten common labels over the mixed sample
set; for each, associated labels are found in the label graph, their prototypes matched
against the image features, and the supplementary samples scored by whether they contain
the queried label, using a multi-label annotation: here UC Merced multi-label (17 labels,
Chaudhuri et al. 2017). EuroSAT has no multi-label annotation, so its supplementary
samples are counted (``supplementary_eurosat``) but not scored.

Per label, over the UC Merced samples that are not exact matches (a sample is positive if
its annotation holds the label's annotation counterpart, ``ANNOTATION`` below; predicted
positive if it is among the label's supplementary samples):

* ``predictions`` (scored supplementary samples), ``positives``, ``true_positives``;
* ``precision`` = true positives / predictions, **0.0 for a label with no prediction**
  (``no_predictions: true``), ``recall`` = true positives / positives, and their ``f1``.

Every aggregate covers all ten labels, a label without predictions counting with
precision, recall and F1 0: ``macro_*`` (plain means), ``weighted_*`` (weights proportional
to each label's positives, as the paper weights its groups) and ``micro_*`` (pooled counts:
all true positives over all predictions, over all positives). ``labels_without_predictions``
names the labels with no scored (UC Merced) supplementary sample, and
``labels_without_supplementary`` those of them that returned none at all, EuroSAT
included. The paper's accuracy is
not reported: it counts true negatives, and with few positives among many samples a label
that returns nothing scores an accuracy close to 1. ``weighted_precision_predicting_labels``
is the earlier headline (precision weighted over the labels with predictions only), kept
beside the others for comparison, not as a summary.

Data, label graph and prototypes as in ``bench/query.py`` (real EfficientNet-Lite0
ImageNet features, PCA 512, real Algorithm-1 graph); the 29,100 real samples only
(``data: real``), one client.
Writes ``bench/results/supplementary.json``. Run: ``python bench/supplementary.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from common import machine, require_data, write_json
from query import COMMON_LABELS, label_graph, prototypes, real_features, samples_table

if TYPE_CHECKING:
    from samplehub.retrieval.snapshot import SampleSnapshot
    from samplehub.retrieval.types import QueryResult

# Query label (unified id in the label graph) -> UC Merced multi-label annotation label that
# shows it. The annotation has no river, road or residential class, so each maps to the
# visible material: rivers and lakes show ``water``, highways ``pavement``, residential and
# industrial land ``buildings``, agricultural land ``field``, pasture ``grass``, beaches ``sand``.
ANNOTATION = {
    "river": "water",
    "forest": "trees",
    "highway_area": "pavement",
    "residential_land": "buildings",
    "industrial_land": "buildings",
    "agricultural": "field",
    "beach": "sand",
    "sea_lake": "water",
    "pasture": "grass",
    "building": "buildings",
}


def read_annotation(path: Path) -> dict[str, set[str]]:
    """Image name (``river05``) -> its annotation labels."""
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")[1:]
    return {
        cells[0]: {name for name, flag in zip(header, cells[1:], strict=True) if flag == "1"}
        for cells in (line.split("\t") for line in lines[1:] if line.strip())
    }


def score_label(
    label: str, result: QueryResult, snapshot: SampleSnapshot, annotation: dict[str, set[str]]
) -> dict:
    """Counts, precision, recall and F1 of one query label's supplementary samples on UC Merced."""
    ucm = {int(sid): image_name(str(rel)) for sid, rel, ds in zip(
        snapshot.sample_id, snapshot.relpath, snapshot.dataset, strict=True)
        if snapshot.datasets[ds] == "uc_merced_21"}

    def names(hits: list) -> set[str]:
        return {ucm[h.sample_id] for h in hits if h.sample_id in ucm}

    return {
        **score_images(label, names(result.exact), names(result.supplementary), annotation),
        "supplementary_eurosat": sum(h.dataset == "eurosat_10" for h in result.supplementary),
        "associated": [a["label"] for a in result.plan["labels"][label]["associated"]],
    }


def image_name(relpath: str) -> str:
    """The annotation's name of a UC Merced image (``river/river05.jpg`` -> ``river05``)."""
    return relpath.split("/")[-1].rsplit(".", 1)[0]


def score_images(label: str, exact: set[str], found: set[str],
                 annotation: dict[str, set[str]]) -> dict:
    """Counts and scores of one label over the annotated images that are not exact matches.

    Args:
        label: the query label (its annotation counterpart is ``ANNOTATION[label]``).
        exact: names of the images among the label's exact matches.
        found: names of the images among its supplementary samples.
        annotation: image name -> annotation labels (:func:`read_annotation`).
    """
    target = ANNOTATION[label]
    images = sorted(set(annotation) - exact)
    truth = np.array([target in annotation[i] for i in images])
    predicted = np.array([i in found for i in images])
    counts = Counts(int(predicted.sum()), int(truth.sum()), int((truth & predicted).sum()))
    return {
        "label": label,
        "annotation_label": target,
        "samples": len(images),
        "predictions": counts.predictions,
        "positives": counts.positives,
        "true_positives": counts.true_positives,
        "no_predictions": counts.predictions == 0,
        **counts.scores(),
    }


@dataclass(frozen=True)
class Counts:
    """Predictions, positives and true positives of one label, or pooled over labels."""

    predictions: int
    positives: int
    true_positives: int

    def scores(self) -> dict[str, float]:
        """Precision (0 without predictions), recall (0 without positives) and their F1."""
        p = self.true_positives / self.predictions if self.predictions else 0.0
        r = self.true_positives / self.positives if self.positives else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}


def summary(rows: list[dict]) -> dict:
    """Macro, positive-weighted and micro precision / recall / F1 over every label."""
    out: dict = {
        "labels_scored": len(rows),
        "labels_without_predictions": [r["label"] for r in rows if r["no_predictions"]],
        "labels_without_supplementary": [
            r["label"] for r in rows if r["no_predictions"] and not r["supplementary_eurosat"]
        ],
    }
    total = sum(r["positives"] for r in rows)
    for key in ("precision", "recall", "f1"):
        out[f"macro_{key}"] = round(float(np.mean([r[key] for r in rows])), 4)
        out[f"weighted_{key}"] = (
            round(sum(r[key] * r["positives"] for r in rows) / total, 4) if total else None
        )
    pooled = Counts(*(sum(r[k] for r in rows)
                      for k in ("predictions", "positives", "true_positives")))
    out.update({f"micro_{k}": v for k, v in pooled.scores().items()})
    predicting = [r for r in rows if not r["no_predictions"]]
    weight = sum(r["positives"] for r in predicting)
    out["weighted_precision_predicting_labels"] = (
        round(sum(r["precision"] * r["positives"] for r in predicting) / weight, 4)
        if weight else None
    )
    return out


def main() -> None:
    """Query each common label on EuroSAT + UC Merced and score its supplementary samples."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=200, help="supplementary samples per label")
    parser.add_argument("--max-label-distance", type=float, default=1.0)
    parser.add_argument("--similarity-threshold", type=float, default=0.5)
    args = parser.parse_args()
    data = require_data("eurosat_rgb", "ucmerced", "ucmerced_multilabel")

    from samplehub.config import RetrievalConfig, load_config
    from samplehub.index.ivfpq import build_ivfpq_index
    from samplehub.labels.settings import graph_settings_from_config
    from samplehub.retrieval.context import QueryContext
    from samplehub.retrieval.query import query_context
    from samplehub.retrieval.search import IvfpqSearch
    from samplehub.retrieval.snapshot import SampleSnapshot
    from samplehub.retrieval.types import QuerySpec

    xb, datasets, classes, relpaths = real_features()
    graph = label_graph()
    snapshot = SampleSnapshot.from_table(samples_table(datasets, [[c] for c in classes], relpaths))
    vectors = IvfpqSearch.of(
        build_ivfpq_index(xb, np.arange(len(xb)), 256, 64, 8, refine=True, max_train=65_536),
        snapshot.sample_id,
    )
    ctx = QueryContext(
        snapshot,
        graph,
        graph_settings_from_config(load_config(["graph=embedded"])).association,
        vectors,
        prototypes(graph, xb, datasets, [[c] for c in classes]),
    )
    annotation = read_annotation(data / "ucmerced_multilabel" / "LandUse_Multilabeled.txt")
    rows = []
    for label in COMMON_LABELS:
        spec = QuerySpec(labels=(label,), k=args.k, max_label_distance=args.max_label_distance,
                         similarity_threshold=args.similarity_threshold, index="exact")
        result = query_context(ctx, spec, RetrievalConfig())
        rows.append(score_label(label, result, ctx.snapshot, annotation))
        print(rows[-1], flush=True)
    write_json("supplementary.json", {
        "data": "real",
        "clients": 1,
        "labels": rows,
        **summary(rows),
        "k": args.k,
        "max_label_distance": args.max_label_distance,
        "similarity_threshold": args.similarity_threshold,
        "features": "EfficientNet-Lite0 ImageNet, PCA 512 (not the fine-tuned scene model)",
        **machine(),
    })


if __name__ == "__main__":
    main()
