"""Unlabelled multispectral scenes cut into non-overlapping chips, one sample per chip.

The labelling tool (``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.3) works
on chips of a larger tile: a window of ``chip_size`` pixels slid over the scene without
overlap, every fourth chip in row-by-row order going to the test split (75/25). Each chip is
a catalog sample of this source kind (``tiles``) with its own footprint, so every later stage
is partitioned like the rest of the asset graph.

Layout: one folder per scene holding one single-band GeoTIFF per band, named
``<anything>_<BAND>.tif`` (the OSCD Sentinel-2 scenes: ``<city>/S2A_..._B01.tif`` ..
``_B12.tif``, ``_B8A.tif``). Bands at 20 m and 60 m are stacked on the finest (10 m) grid by
nearest-neighbour upsampling, which keeps the native values (as for BigEarthNet,
:func:`samplehub.sources.bigearthnet.upsample_nearest`). A remainder narrower than a chip at
the right or bottom edge is left out.

Options:
    chip_size: chip side in pixels of the finest grid (default 100: about 500 SLIC segments
        of ~20 pixels, the paper's graph size).
    test_every: every n-th chip, row by row, goes to ``test`` (default 4).
    bands: band names in stacking order (default: Sentinel-2's 13 L1C bands).
    sensor: recorded on every chip (default ``sentinel-2``).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np

from samplehub.errors import ConfigError, InvalidSampleError
from samplehub.records import FileEntry, GeoInfo, SampleRecord
from samplehub.sources.base import Source, SourceSpec, batched
from samplehub.sources.bigearthnet import upsample_nearest
from samplehub.sources.filesystem import relative, strip_scheme
from samplehub.sources.geotiff import is_geotiff
from samplehub.sources.label_tree import LabelTree
from samplehub.sources.readers import checksum, footprint_geo

S2_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
                "B11", "B12")  # fmt: skip
DEFAULT_CHIP = 100
DEFAULT_TEST_EVERY = 4
SCENES_CACHED = 2
TIME_PATTERN = re.compile(r"(\d{8}T\d{6})")


@dataclass(frozen=True)
class Scene:
    """One scene folder: its band files in stacking order and its finest-grid size."""

    folder: str
    name: str
    files: tuple[str, ...]
    height: int
    width: int


def chip_split(index: int, test_every: int) -> str:
    """``test`` for every ``test_every``-th chip (1-based, row by row), else ``train``."""
    return "test" if (index + 1) % test_every == 0 else "train"


class TilesSource(Source):
    """Scenes of single-band GeoTIFFs, served as non-overlapping chips (dataset kind ``tiles``).

    Entries: ``relpath`` ``<scene>/r<row>_c<col>``, ``uri`` the scene folder, ``files`` the
    band files, ``split`` train/test. Records: (bands, chip, chip) at the files' dtype.
    """

    kind = "tiles"

    def __init__(self, spec: SourceSpec, cache_dir: str | os.PathLike[str] | None = None) -> None:
        options = spec.options
        self.chip_size = int(options.get("chip_size", DEFAULT_CHIP))
        self.test_every = int(options.get("test_every", DEFAULT_TEST_EVERY))
        bands = options.get("bands", S2_L1C_BANDS)
        if self.chip_size < 8 or self.test_every < 2:
            raise ConfigError(
                f"source {spec.name!r}: options.chip_size must be >= 8 and options.test_every "
                f">= 2, got {self.chip_size} and {self.test_every}"
            )
        if isinstance(bands, str) or not isinstance(bands, Sequence) or not bands:
            raise ConfigError(
                f"source {spec.name!r}: options.bands must be a list of band names, got {bands!r}"
            )
        self.bands = tuple(str(b) for b in bands)
        super().__init__(spec, cache_dir)
        self._stacks: OrderedDict[str, tuple[np.ndarray, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state for executors: the scene cache and its lock stay behind."""
        state = self.__dict__.copy()
        state["_stacks"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore, with a fresh lock."""
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def detect(cls, fs: fsspec.AbstractFileSystem, root: str) -> bool:
        """Never guessed: chip cutting is asked for with ``kind: tiles``."""
        return False

    def scenes(self) -> list[Scene]:
        """Scene folders under the root (any depth) holding a GeoTIFF for every band.

        Raises:
            InvalidSampleError: a folder has some of the bands but not all (names the missing).
        """
        import rasterio

        by_folder: dict[str, dict[str, str]] = {}
        for path in sorted(self.fs.find(self.root)):
            if not is_geotiff(path):
                continue
            folder, _, name = path.rpartition("/")
            band = name.rsplit(".", 1)[0].rsplit("_", 1)[-1]
            if band in self.bands:
                by_folder.setdefault(folder, {})[band] = path
        scenes = []
        for folder, found in sorted(by_folder.items()):
            missing = [b for b in self.bands if b not in found]
            if missing:
                raise InvalidSampleError(
                    f"{self.uri_of(folder)}: scene lacks bands {missing} of options.bands "
                    f"{list(self.bands)}; add the files or list only the bands present"
                )
            files = tuple(found[b] for b in self.bands)
            sizes = []
            for path in files:
                with self.fs.open(path, "rb") as f, rasterio.open(f) as ds:
                    sizes.append((ds.height, ds.width))
            height, width = max(sizes)
            name = relative(folder, self.root) or folder.rsplit("/", 1)[-1]
            scenes.append(Scene(folder, name, files, height, width))
        return scenes

    def label_tree(self) -> LabelTree:
        """Empty: chips are unlabelled."""
        return LabelTree()

    def discover(self, batch_size: int = 2048) -> Iterator[list[FileEntry]]:
        """One entry per whole chip of every scene, row by row; every n-th is ``test``."""
        c = self.chip_size

        def entries() -> Iterator[FileEntry]:
            for scene in self.scenes():
                rows, cols = scene.height // c, scene.width // c
                for index in range(rows * cols):
                    r, col = divmod(index, cols)
                    yield FileEntry(
                        dataset=self.spec.name,
                        relpath=f"{scene.name}/r{r:03d}_c{col:03d}",
                        uri=self.uri_of(scene.folder),
                        files=tuple(self.uri_of(p) for p in scene.files),
                        split=chip_split(index, self.test_every),
                    )

        yield from batched(entries(), batch_size)

    def stack(self, entry: FileEntry) -> tuple[np.ndarray, Any]:
        """The scene of ``entry`` on its finest grid (bands, H, W), with that grid's profile.

        The profile holds ``height``, ``width``, ``transform`` and ``crs``; the last scenes
        read are kept on the source.
        """
        key = entry.uri
        with self._lock:
            if key in self._stacks:
                self._stacks.move_to_end(key)
                return self._stacks[key]
        import rasterio

        bands, finest = [], None
        for uri in entry.files:
            data = self.read_bytes(strip_scheme(uri))
            try:
                with rasterio.MemoryFile(data) as memfile, memfile.open() as ds:
                    if ds.count != 1:
                        raise InvalidSampleError(f"{uri}: expected one band, found {ds.count}")
                    bands.append(ds.read(1))
                    if finest is None or ds.height > finest["height"]:
                        finest = {"height": ds.height, "width": ds.width,
                                  "transform": ds.transform, "crs": ds.crs}
            except rasterio.errors.RasterioIOError as exc:
                raise InvalidSampleError(f"{uri}: cannot decode GeoTIFF ({exc})") from exc
        assert finest is not None  # files is never empty (scenes() requires every band)
        stack = np.stack([upsample_nearest(b, finest["height"], finest["width"]) for b in bands])
        with self._lock:
            self._stacks[key] = (stack, finest)
            while len(self._stacks) > SCENES_CACHED:
                self._stacks.popitem(last=False)
        return stack, finest

    def read(self, entry: FileEntry) -> SampleRecord:
        """Cut the chip ``r<row>_c<col>`` out of its stacked scene, with its footprint.

        Raises:
            InvalidSampleError: a band file is unreadable, or the relpath names no chip.
        """
        match = re.search(r"r(\d+)_c(\d+)$", entry.relpath)
        if match is None:
            raise InvalidSampleError(f"{entry.relpath}: not a chip name r<row>_c<col>")
        r, col = int(match.group(1)), int(match.group(2))
        stack, grid = self.stack(entry)
        c = self.chip_size
        chip = np.ascontiguousarray(stack[:, r * c : (r + 1) * c, col * c : (col + 1) * c])
        if chip.shape[1:] != (c, c):
            raise InvalidSampleError(f"{entry.uri}: chip {entry.relpath} lies outside the scene")
        geo = GeoInfo()
        if grid["crs"] is not None:
            t = grid["transform"]
            left, top = t * (col * c, r * c)
            right, bottom = t * ((col + 1) * c, (r + 1) * c)
            gsd = abs(t.a) if grid["crs"].is_projected else None
            geo = footprint_geo(min(left, right), min(bottom, top), max(left, right),
                                max(bottom, top), grid["crs"].to_wkt(), gsd=gsd)
        found = TIME_PATTERN.search(entry.files[0].rsplit("/", 1)[-1]) if entry.files else None
        if found:
            geo.time = datetime.strptime(found.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return SampleRecord(
            entry=entry,
            image=chip,
            band_names=self.bands,
            sensor=self.spec.options.get("sensor", "sentinel-2"),
            geo=geo,
            checksum=checksum(chip.tobytes()),
        )
