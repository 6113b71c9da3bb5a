"""The Zarr bundle of an export: the selected images at native dtype and bands.

Like the store, samples are grouped by shape: ``images/<key>`` is (n, C, H, W) for each
``<dtype>_<C>x<H>x<W>`` key, with ``sample_id/<key>``, ``label/<key>`` (index into the
group attribute ``classes``) and ``split/<key>`` (index into ``splits``) beside it; the
manifest's ``zarr_array``/``zarr_index`` columns point into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr

from samplehub.store import array_key


class ZarrBundle:
    """An export's Zarr v3 group."""

    def __init__(self, path: Path, classes: Sequence[str], splits: Sequence[str]) -> None:
        self.group = zarr.open_group(str(path), mode="w")
        self.group.attrs.update({"classes": list(classes), "splits": list(splits)})

    def append(
        self, images: np.ndarray, sample_ids: Sequence[int], labels: Sequence[int],
        splits: Sequence[int],
    ) -> tuple[str, int]:
        """Append (n, C, H, W) images of one shape; returns their key and first row."""
        key = array_key(images[0])
        columns = {
            "images": images,
            "sample_id": np.asarray(sample_ids, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int32),
            "split": np.asarray(splits, dtype=np.int8),
        }
        start = 0
        for name, values in columns.items():
            folder = self.group.require_group(name)
            if key not in folder:
                chunks = (1, *values.shape[1:]) if name == "images" else (4096,)
                folder.create_array(
                    key, shape=(0, *values.shape[1:]), chunks=chunks, dtype=values.dtype
                )
            array = folder[key]
            start = array.shape[0]  # type: ignore[union-attr]
            array.resize((start + len(values), *values.shape[1:]))  # type: ignore[union-attr]
            array[start:] = values  # type: ignore[index]
        return key, start
