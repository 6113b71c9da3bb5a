"""Hash codes of the catalog's samples and the Hamming index over them (DESIGN.md, section 5).

Codes come from the champion hash model (:mod:`samplehub.models.hash_model`) applied to the
stored features: DMCH Eq. 1 (``../shared/papers/dmch-deep-metric-category-hashing.txt``) or
DUWH Eq. 2 (``../shared/papers/duwh-deep-unsupervised-weighted-hashing.txt``), with the
pre-quantization values that DMCH Eq. 7's coarse-to-fine ranking re-ranks on.

Storage contract:

* the Delta table ``hash_codes`` (partitioned by dataset) holds one row per (``sample_id``,
  ``model_version``) with the codes packed 8 bits per byte (``bits``, binary, K / 8 bytes) and the
  pre-quantization ``values`` (list<float32>, length K); :func:`compute_hash_codes` encodes
  only the samples without codes of the model version, so re-runs are cheap and a new
  champion computes everything again under its own key;
* one :class:`ml.hashing.serving.HammingIndex` per model version under
  ``<home>/index/hash/<model_version>/`` (``index.faissbin`` + ``arrays.npz`` +
  ``index.json``, published together as one version by :mod:`samplehub.index.files`):
  flat below ``hashing.ivf_min_size`` codes, IVF above; rebuilt from the table whenever it
  holds codes the index lacks (a binary index over 1M codes builds in seconds).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.hashing.serving import HammingIndex, pack_codes
from samplehub.catalog import Catalog
from samplehub.catalog.vectors import (
    sample_rows,
    stored_sample_ids,
    vector_column,
    vector_rows,
)
from samplehub.config import SampleHubConfig
from samplehub.errors import IndexNotTrainedError
from samplehub.feature_store import load_features
from samplehub.index.files import publish_version, published_folder
from samplehub.models.hash_model import HashModel, load_hash_model
from samplehub.repository import Repository

INDEX_FILE = "index.faissbin"
ARRAYS_FILE = "arrays.npz"
META_FILE = "index.json"
ENCODE_BLOCK = 65_536


def hash_index_path(config: SampleHubConfig, model_version: str) -> Path:
    r"""``<home>/index/hash/<model_version>`` (characters other than ``[\w.-]`` become ``_``)."""
    return config.home_path / "index" / "hash" / re.sub(r"[^\w.-]", "_", model_version)


def hash_code_table(
    ids: np.ndarray, dataset: str, model_version: str, codes: np.ndarray, values: np.ndarray
) -> pa.Table:
    """Rows of the ``hash_codes`` table for {0, 1} ``codes`` (n, K) and ``values`` (n, K)."""
    n = len(codes)
    packed = pack_codes(codes)
    width = packed.shape[1]
    bits = pa.Array.from_buffers(
        pa.binary(), n,
        [None, pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int32)),
         pa.py_buffer(packed.tobytes())],
    )
    return sample_rows(
        ids, dataset, model_version, {"bits": bits, "values": vector_column(values)}
    )


def hash_code_ids(catalog: Catalog, dataset: str, model_version: str) -> np.ndarray:
    """Ids of ``dataset`` that already have codes of hash model version ``model_version``."""
    return stored_sample_ids(catalog, "hash_codes", dataset, model_version)


def load_hash_codes(
    catalog: Catalog, model_version: str, datasets: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored codes of one hash model version.

    Returns:
        ``ids`` (n,) int64 ascending and unique, packed codes (n, K / 8) uint8 and
        pre-quantization values (n, K) float32 in the same order.
    """
    expression = pc.field("model_version") == model_version
    if datasets is not None:
        expression = expression & pc.field("dataset").isin(list(datasets))
    table = catalog.read(
        "hash_codes", columns=["sample_id", "bits", "values"], filter_expression=expression
    )
    ids = table.column("sample_id").to_numpy().astype(np.int64)
    if not len(ids):
        return ids, np.zeros((0, 0), np.uint8), np.zeros((0, 0), np.float32)
    bits = table.column("bits").combine_chunks()
    packed = np.frombuffer(b"".join(bits.to_pylist()), dtype=np.uint8).reshape(len(ids), -1)
    xv = vector_rows(table.column("values"))
    ids, first = np.unique(ids, return_index=True)
    return ids, packed[first], xv[first]


@dataclass
class HashCodeReport:
    """What one ``hash_codes`` run did.

    Attributes:
        dataset: the dataset.
        model: the hash model version (``<method>-<bits>-v<version>``).
        total: samples of the dataset with features of the model's feature version.
        computed: samples encoded by this run.
        cached: samples that already had codes of this model version.
        seconds: wall time.
    """

    dataset: str
    model: str
    total: int
    computed: int
    cached: int
    seconds: float


def compute_hash_codes(
    repo: Repository, dataset: str, model: HashModel | None = None
) -> HashCodeReport:
    """Encode the dataset's features that have no codes of the champion's version yet.

    Args:
        repo: the repository.
        dataset: a dataset with stored features.
        model: the hash model; None loads the champion of ``hashing.method``.

    Returns:
        Counts and seconds.

    Raises:
        IndexNotTrainedError: no champion hash model (or one of other features).
    """
    start = time.perf_counter()
    model = model or load_hash_model(repo.config)
    ids, xb = load_features(repo.catalog, model.feature_version, [dataset])
    new = ~np.isin(ids, hash_code_ids(repo.catalog, dataset, model.model_version))
    for s in range(0, int(new.sum()), ENCODE_BLOCK):
        block = np.flatnonzero(new)[s : s + ENCODE_BLOCK]
        codes, values = model.encode(xb[block])
        table = hash_code_table(ids[block], dataset, model.model_version, codes, values)
        repo.catalog.append("hash_codes", table)
    computed = int(new.sum())
    return HashCodeReport(
        dataset, model.model_version, len(ids), computed, len(ids) - computed,
        time.perf_counter() - start,
    )


Action = Literal["built", "rebuilt", "unchanged"]


@dataclass
class HashIndexUpdate:
    """What one Hamming-index update did.

    Attributes:
        model: the hash model version.
        action: ``built`` (first), ``rebuilt`` (new codes) or ``unchanged``.
        ntotal: indexed codes.
        kind: ``flat`` or ``ivf``.
        bytes_per_sample: memory per sample in the index (codes, ids, re-rank values).
        seconds: wall time.
        path: the index folder.
    """

    model: str
    action: Action
    ntotal: int
    kind: str
    bytes_per_sample: int
    seconds: float
    path: Path

    @property
    def memory_bytes(self) -> int:
        """Index memory over all samples."""
        return self.ntotal * self.bytes_per_sample


def update_hash_index(repo: Repository, model: HashModel | None = None) -> HashIndexUpdate:
    """Bring the Hamming index of the champion's version up to date with ``hash_codes``.

    Raises:
        IndexNotTrainedError: no champion, or no codes of its version stored yet
            (materialize ``hash_codes``).
    """
    start = time.perf_counter()
    model = model or load_hash_model(repo.config)
    path = hash_index_path(repo.config, model.model_version)
    ids, packed, values = load_hash_codes(repo.catalog, model.model_version)
    if not len(ids):
        raise IndexNotTrainedError(
            f"no hash codes of {model.model_version} are stored; materialize hash_codes first"
        )
    action: Action = "built"
    if (path / INDEX_FILE).is_file():
        index = load_hash_index(repo.config, model.model_version)
        action = "unchanged" if np.array_equal(np.sort(index.ids), ids) else "rebuilt"
    if action != "unchanged":
        h = repo.config.hashing
        index = HammingIndex(model.n_bits, ivf_min_size=h.ivf_min_size, nprobe=h.nprobe)
        index.build(np.unpackbits(packed, axis=1, count=model.n_bits), ids, values)
        save_hash_index(index, path, model.model_version)
    return HashIndexUpdate(
        model.model_version, action, len(index), index.kind, index.bytes_per_sample,
        time.perf_counter() - start, path,
    )


@dataclass(frozen=True)
class HashIndexMeta:
    """``index.json`` of a saved Hamming index."""

    model: str
    n_bits: int
    kind: str
    ntotal: int
    ivf_min_size: int
    nprobe: int
    bytes_per_sample: int


def save_hash_index(index: HammingIndex, path: Path, model: str) -> Path:
    """Publish ``index`` at ``path`` as a new version (:mod:`samplehub.index.files`).

    Returns:
        ``path``.
    """
    import faiss

    meta = HashIndexMeta(model, index.n_bits, index.kind, len(index), index.ivf_min_size,
                         index.nprobe, index.bytes_per_sample)
    values = index.values if index.values is not None else np.zeros((0, index.n_bits), np.float16)
    writers: dict[str, Callable[[str], object]] = {
        INDEX_FILE: lambda p: faiss.write_index_binary(index.index, p),
        ARRAYS_FILE: lambda p: _save_npz(p, ids=index.ids, packed=index.packed, values=values),
        META_FILE: lambda p: Path(p).write_text(json.dumps(asdict(meta), indent=2)),
    }
    publish_version(path, writers)
    return path


def _save_npz(path: str, ids: np.ndarray, packed: np.ndarray, values: np.ndarray) -> None:
    """``np.savez`` to exactly ``path`` (no ``.npz`` suffix appended)."""
    with open(path, "wb") as f:
        np.savez(f, ids=ids, packed=packed, values=values)


def load_hash_index(config: SampleHubConfig, model_version: str) -> HammingIndex:
    """The saved Hamming index of a hash model version.

    Raises:
        IndexNotTrainedError: none was built; materialize the ``hash_index`` asset.
    """
    import faiss

    path = published_folder(hash_index_path(config, model_version))
    if not all((path / name).is_file() for name in (INDEX_FILE, ARRAYS_FILE, META_FILE)):
        raise IndexNotTrainedError(
            f"no Hamming index of {model_version} at {path}; materialize the hash_index asset"
        )
    meta = HashIndexMeta(**json.loads((path / META_FILE).read_text()))
    index = HammingIndex(meta.n_bits, ivf_min_size=meta.ivf_min_size, nprobe=meta.nprobe)
    index.index = faiss.read_index_binary(str(path / INDEX_FILE))  # keeps its nprobe
    with np.load(path / ARRAYS_FILE) as arrays:
        index.ids, index.packed = arrays["ids"], arrays["packed"]
        index.values = arrays["values"] if len(arrays["values"]) else None
    return index
