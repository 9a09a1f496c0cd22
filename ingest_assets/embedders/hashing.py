"""Deterministic in-process embedder for tests and benchmarks (no model, no network)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ingest_assets.embedders.base import EmbedderStats, check_vectors
from ingest_assets.embedders.settings import EmbeddingSettings
from ingest_assets.lib.hashed_vectors import hashed_vectors

DEFAULT_DIMENSION = 384


class HashingEmbedder:
    def __init__(self, settings: EmbeddingSettings):
        self.model = settings.model
        self.dimension = settings.dimension or DEFAULT_DIMENSION
        self.stats = EmbedderStats()
        self.max_concurrency = 1

    async def prepare(self) -> None:
        pass

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = hashed_vectors(texts, self.dimension)
        self.stats.requests += 1
        self.stats.texts += len(texts)
        self.stats.latencies.append(time.perf_counter() - started)
        return check_vectors(vectors, len(texts), self.dimension)
