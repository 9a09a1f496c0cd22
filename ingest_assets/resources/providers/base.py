"""The provider interface: an async embedder opened for one step or one command."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class EmbeddingError(Exception):
    """The embedding provider failed or returned something unusable."""


@dataclass(frozen=True)
class EmbedderSpec:
    """Plain configuration of a provider; secrets are resolved before they get here."""

    provider: str
    model: str
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    batch_size: int = 32
    dimension: int | None = None  # only for providers that cannot report it (hashing)


@dataclass
class EmbedderStats:
    requests: int = 0
    texts: int = 0
    tokens: int = 0
    seconds: float = 0.0


class Embedder(Protocol):
    model: str
    dimension: int
    stats: EmbedderStats

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, in order."""
        ...


def check_vectors(vectors: np.ndarray, count: int, dimension: int) -> np.ndarray:
    """Reject a response that would corrupt the index: wrong shape or non-finite values."""
    if vectors.shape != (count, dimension):
        raise EmbeddingError(
            f"expected {count} vectors of dimension {dimension}, got shape {vectors.shape}"
        )
    if not np.isfinite(vectors).all():
        raise EmbeddingError("embedding contains NaN or infinite values")
    return vectors.astype(np.float32, copy=False)


@contextlib.asynccontextmanager
async def open_embedder(spec: EmbedderSpec) -> AsyncIterator[Embedder]:
    """Open the provider named in `spec` for the duration of the block."""
    if spec.provider == "local":
        from ingest_assets.resources.providers.local import LocalEmbedder

        yield await LocalEmbedder.load(spec)
    elif spec.provider == "hashing":
        from ingest_assets.resources.providers.hashing import HashingEmbedder

        yield HashingEmbedder(spec)
    else:
        raise EmbeddingError(
            f"embedding provider {spec.provider!r} is not available yet; use 'local' or 'hashing'"
        )
