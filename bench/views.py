"""A corpus of real views: one feature vector per random view of a real image.

The serving benchmarks (``bench/query.py``, ``bench/serving.py``) need a million vectors
whose neighbourhoods look like a real repository's. Perturbed copies of 29,100 features
(the older corpus) put every vector in a tight cluster around its source, which flatters
both recall and latency. Here each vector is the shipped feature model's encoding of a
random view of a real image from ``../shared/data``: EuroSAT RGB (27,000 chips of 64 px),
UC Merced (2,100 scenes of 256 px) and the BigEarthNet Sentinel-2 examples (6 patches,
B04/B03/B02 at 120 px). A view is a square crop covering 25-100 % of the image's area at a
random place, random horizontal and vertical flips, a random multiple of 90 degrees, and a
mild colour jitter (brightness and contrast each scaled by 0.9-1.1), resized to
:data:`SIDE` px and encoded at that resolution.

This corpus is for index behaviour (neighbourhood structure, recall, latency), not for model
quality: 64 px views of 256 px scenes lose detail the 224 px pipeline keeps.

Queries are one view each of :data:`N_QUERY_IMAGES` images held out before any index view is
drawn, so no view of a query's image is in the index.

Written to ``bench/.cache/views_64px/`` in chunks of :data:`CHUNK` vectors (float32, unit
norm), so an interrupted run resumes at the next missing chunk: ``views.npy``-style chunks
``chunk_NNN.npy``, the per-view source image ``source.npy``, the image table
``images.json`` (dataset, class labels, path) and ``queries.npy`` / ``query_source.npy``.
About 32 min on 2 cores (ONNX Runtime, 520 img/s at 64 px).

Run: ``python bench/views.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import REPO, require_data

CACHE = REPO / "bench" / ".cache"
SIDE = 64
CHUNK = 65_536
N_VIEWS = 1_000_000
N_QUERY_IMAGES = 200
SEED = 0
FOLDER = CACHE / f"views_{SIDE}px"


@dataclass(frozen=True)
class Image:
    """One source image: its dataset, labels and path relative to the data root."""

    dataset: str
    labels: tuple[str, ...]
    relpath: str


def folder_images(dataset: str, root: Path, data: Path) -> list[Image]:
    """Every image of a folder-per-class dataset, sorted by class then file name."""
    out = []
    for cls in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() in {".jpg", ".jpeg", ".tif", ".png"}:
                out.append(Image(dataset, (cls,), str(f.relative_to(data))))
    return out


def bigearthnet_images(data: Path) -> list[Image]:
    """The Sentinel-2 example patches, labelled by their metadata's CORINE classes."""
    root = data / "bigearthnet_examples" / "BigEarthNet-S2-Example"
    out = []
    for patch in sorted(p for p in root.iterdir() if p.is_dir()):
        meta = json.loads(next(patch.glob("*.json")).read_text())
        out.append(Image("bigearthnet_s2", tuple(meta["labels"]), str(patch.relative_to(data))))
    return out


def decode(image: Image, data: Path) -> np.ndarray:
    """The image as uint8 (H, W, 3) RGB; Sentinel-2 reflectance clipped to 0-3000."""
    path = data / image.relpath
    if path.is_dir():
        import rasterio

        bands = []
        for band in ("B04", "B03", "B02"):
            with rasterio.open(next(path.glob(f"*_{band}.tif"))) as ds:
                bands.append(ds.read(1).astype(np.float32))
        rgb = np.clip(np.stack(bands, axis=-1) / 3000.0 * 255.0, 0, 255)
        return rgb.astype(np.uint8)
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        return np.asarray(img.convert("RGB"))


def random_view(img: np.ndarray, rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """A random view (module docstring) of ``img`` (H, W, 3) as uint8 (3, side, side)."""
    from PIL import Image as PILImage

    h, w = img.shape[:2]
    crop = max(8, round(math.sqrt(rng.uniform(0.25, 1.0)) * min(h, w)))
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    view = PILImage.fromarray(img[y : y + crop, x : x + crop]).resize(
        (side, side), PILImage.BILINEAR
    )
    out = np.asarray(view, dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1]
    out = np.rot90(out, int(rng.integers(0, 4)))
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.9, 1.1) + mean * rng.uniform(0.9, 1.1)
    return np.clip(out, 0, 255).astype(np.uint8).transpose(2, 0, 1)


def all_images() -> tuple[list[Image], Path]:
    """The corpus' source images and the data root."""
    data = require_data("eurosat_rgb", "ucmerced", "bigearthnet_examples")
    images = folder_images("eurosat", data / "eurosat_rgb", data)
    images += folder_images("ucmerced", data / "ucmerced" / "Images", data)
    images += bigearthnet_images(data)
    return images, data


def build(n_views: int = N_VIEWS, folder: Path = FOLDER) -> None:
    """Write the corpus (module docstring) to ``folder``, resuming a partial run."""
    from samplehub.config import load_config
    from samplehub.models.feature_model import load_feature_model
    from samplehub.progress import progress_bar

    images, data = all_images()
    rng = np.random.default_rng(SEED)
    held_out = np.sort(rng.choice(len(images), N_QUERY_IMAGES, replace=False))
    pool = np.setdiff1d(np.arange(len(images)), held_out)
    # Round-robin over a shuffled pool: every image gets n_views / len(pool) views, +-1.
    source = rng.permutation(pool)[np.arange(n_views) % len(pool)].astype(np.int32)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images.json").write_text(json.dumps([vars(i) | {"labels": list(i.labels)}
                                                    for i in images]))
    np.save(folder / "source.npy", source)
    np.save(folder / "query_source.npy", held_out.astype(np.int32))

    print(f"decoding {len(images):,} images", flush=True)
    pixels = [decode(i, data) for i in images]
    config = load_config([f"model.resolution={SIDE}", "model.batch_size=256"])
    model = load_feature_model(config)
    if not (folder / "queries.npy").exists():
        qrng = np.random.default_rng(SEED + 1)
        views = np.stack([random_view(pixels[i], qrng) for i in held_out])
        np.save(folder / "queries.npy", model.encode(views).astype(np.float32))

    n_chunks = math.ceil(n_views / CHUNK)

    def complete(c: int) -> bool:
        # the last chunk of a smaller --n run is short: a larger run rewrites it whole
        path = folder / f"chunk_{c:03d}.npy"
        return path.exists() and len(np.load(path, mmap_mode="r")) == min(
            CHUNK, n_views - c * CHUNK)

    todo = [c for c in range(n_chunks) if not complete(c)]
    start = time.perf_counter()
    with progress_bar("views", total=n_views, unit="view") as bar:
        bar.update(n_views - sum(min(CHUNK, n_views - c * CHUNK) for c in todo))
        for c in todo:
            rows = np.arange(c * CHUNK, min((c + 1) * CHUNK, n_views))
            crng = np.random.default_rng([SEED, c])  # each chunk's views reproducible alone
            out = np.empty((len(rows), model.dim), dtype=np.float32)
            for b in range(0, len(rows), 1024):
                batch = rows[b : b + 1024]
                views = np.stack([random_view(pixels[source[r]], crng) for r in batch])
                out[b : b + len(batch)] = model.encode(views)
                bar.update(len(batch))
            tmp = folder / f"chunk_{c:03d}.tmp.npy"
            np.save(tmp, out)
            os.replace(tmp, folder / f"chunk_{c:03d}.npy")
    print(f"{len(todo)} chunks in {time.perf_counter() - start:.0f} s", flush=True)


@dataclass
class Corpus:
    """The cached corpus: vectors, their source image and the image table."""

    xb: np.ndarray  # (n, 512) float32, unit norm
    source: np.ndarray  # (n,) int32 index into images
    xq: np.ndarray  # (200, 512) float32 query views
    query_source: np.ndarray  # (200,) int32 index into images
    images: list[Image]


def load(n: int | None = None, folder: Path = FOLDER) -> Corpus:
    """The first ``n`` views (all when None) and the queries; raises if not built."""
    if not (folder / "queries.npy").exists():
        raise FileNotFoundError(f"no real-view corpus at {folder}; run python bench/views.py")
    source = np.load(folder / "source.npy")
    n = len(source) if n is None else n
    chunks = []
    for c in range(math.ceil(n / CHUNK)):
        path = folder / f"chunk_{c:03d}.npy"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run python bench/views.py to finish")
        chunks.append(np.load(path, mmap_mode="r"))
    xb = np.concatenate(chunks)[:n] if chunks else np.empty((0, 512), np.float32)
    return Corpus(np.ascontiguousarray(xb, dtype=np.float32), source[:n],
                  np.load(folder / "queries.npy"), np.load(folder / "query_source.npy"),
                  image_table(folder))


def image_table(folder: Path = FOLDER) -> list[Image]:
    """The corpus' source images, in the order ``source`` indexes them."""
    return [Image(i["dataset"], tuple(i["labels"]), i["relpath"])
            for i in json.loads((folder / "images.json").read_text())]


def main() -> None:
    """Build the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_VIEWS, help="number of index views")
    build(parser.parse_args().n)


if __name__ == "__main__":
    main()
