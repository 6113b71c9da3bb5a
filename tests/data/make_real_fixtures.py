"""Regenerate the small real-image fixtures under ``tests/data/`` from ``../shared/data``.

Run from the repository root: ``python tests/data/make_real_fixtures.py``. A seeded pick of
real chips, downsampled to 64 x 64 JPEG, so that the daemon test runs real features and a
real label graph over real scenes in seconds:

- ``eurosat_mini/<Class>/*.jpg``: EuroSAT RGB (Helber et al. 2019, MIT), 10 chips each of
  River, Highway and Forest, at their native 64 x 64;
- ``ucmerced_mini/<class>/*.jpg``: UC Merced Land Use (Yang & Newsam 2010, USGS public
  domain), 10 images each of river and freeway, downsampled from 256 x 256. The daemon
  test drops this folder under ``watch_root``.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"
SEED = 20261129
PICKS = {
    "eurosat_mini": (SHARED / "eurosat_rgb", ("River", "Highway", "Forest")),
    "ucmerced_mini": (SHARED / "ucmerced" / "Images", ("river", "freeway")),
}
PER_CLASS = 10
SIZE = 64


def main() -> None:
    """Write every fixture folder anew."""
    rng = random.Random(SEED)
    for name, (root, classes) in PICKS.items():
        target = HERE / name
        shutil.rmtree(target, ignore_errors=True)
        for cls in classes:
            files = sorted((root / cls).glob("*.jpg"))
            for path in rng.sample(files, PER_CLASS):
                out = target / cls / path.name
                out.parent.mkdir(parents=True, exist_ok=True)
                with Image.open(path) as image:
                    image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(
                        out, quality=90
                    )


if __name__ == "__main__":
    main()
