"""A small real labelling view for the view, API and page tests.

Forty EuroSAT RGB chips (ten each of Forest, SeaLake, Industrial, AnnualCrop, from
``../shared/data/eurosat_rgb``) are ingested as the catalog dataset ``chips``. Their 2-D
points are a cheap stand-in for the pipeline's UMAP: the first two principal components
of each chip's band means and standard deviations (dark water and bright industry fall
apart). Masks come from scikit-image SLIC (16 segments per 64 px chip); segment points
are the principal components of the segments' mean colours.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from samplehub.config import load_config
from samplehub.labelling.view import LabellingView, write_labelling_view
from samplehub.repository import Repository
from samplehub.sources import SourceSpec

CLASSES = ("Forest", "SeaLake", "Industrial", "AnnualCrop")
PER_CLASS = 10
VIEW = "chips"


def copy_subset(shared_data: Path, out: Path) -> Path:
    """The first ``PER_CLASS`` images of each class in a folder tree under ``out``."""
    for name in CLASSES:
        files = sorted((shared_data / "eurosat_rgb" / name).glob("*.jpg"))[:PER_CLASS]
        (out / name).mkdir(parents=True)
        for file in files:
            shutil.copy(file, out / name / file.name)
    return out


def open_repo(home: Path, watch_root: Path) -> Repository:
    """The repository of ``home`` publishing under ``watch_root``."""
    return Repository(load_config([f"home={home}", f"watch_root={watch_root}",
                                   "executor.workers=2"]))


def ingest_chips(shared_data: Path, root: Path) -> Path:
    """A home with the chips ingested as dataset ``chips`` and their view written."""
    home = root / "home"
    source = copy_subset(shared_data, root / "eurosat_subset")
    repo = open_repo(home, root / "watched")
    repo.ingest(SourceSpec(name=VIEW, uri=str(source)))
    chips, segments, masks = build_view(repo)
    write_labelling_view(home, VIEW, chips[["sample_id", "x", "y"]], segments, masks)
    return home


def pca2(features: np.ndarray) -> np.ndarray:
    """The first two principal components, shape (N, 2)."""
    centred = features - features.mean(axis=0)
    centred /= centred.std(axis=0) + 1e-9
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def build_view(repo: Repository) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Chips, segments and SLIC masks of every ``chips`` sample (module docstring)."""
    from skimage.segmentation import slic

    rows = repo.catalog.read("samples", VIEW, columns=["sample_id", "relpath"]).to_pandas()
    rows = rows.sort_values("relpath").reset_index(drop=True)
    chip_features, masks, seg_rows, seg_features = [], {}, [], []
    for sample_id in rows["sample_id"]:
        _, pixels = repo.image(int(sample_id))
        image = pixels.transpose(1, 2, 0).astype(np.float64) / 255
        flat = image.reshape(-1, 3)
        chip_features.append(np.concatenate([flat.mean(0), flat.std(0)]))
        mask = slic(image, n_segments=16, compactness=10, start_label=1).astype(np.int32)
        masks[str(sample_id)] = mask
        for segment in np.unique(mask):
            seg_rows.append((str(sample_id), int(segment)))
            seg_features.append(flat[mask.reshape(-1) == segment].mean(0))
    xy = pca2(np.array(chip_features))
    chips = pd.DataFrame({"sample_id": rows["sample_id"].astype(str), "x": xy[:, 0],
                          "y": xy[:, 1], "relpath": rows["relpath"]})
    sxy = pca2(np.array(seg_features))
    segments = pd.DataFrame({"sample_id": [s for s, _ in seg_rows],
                             "segment": [g for _, g in seg_rows], "x": sxy[:, 0], "y": sxy[:, 1]})
    return chips, segments, masks


def labelled_home(ingested: Path, home: Path, watch_root: Path) -> tuple[Repository, pd.DataFrame]:
    """A copy of the ingested home; its repository and the view's chips with their relpath."""
    shutil.copytree(ingested, home)
    repo = open_repo(home, watch_root)
    chips = LabellingView.open(home, VIEW).chips
    rows = repo.catalog.read("samples", VIEW, columns=["sample_id", "relpath"]).to_pandas()
    relpath = dict(zip(rows["sample_id"].astype(str), rows["relpath"], strict=True))
    return repo, chips.assign(relpath=chips["sample_id"].map(relpath))
