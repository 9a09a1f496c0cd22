"""The provider interface: an async embedder opened for one step or one command."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class EmbeddingError(Exception):
    """The embedding provider failed or returned something unusable."""


class PermanentEmbeddingError(EmbeddingError):
    """A failure that asking again cannot fix (a wrong URL or key, a missing model): the step
    fails at once, without retries."""


class BatchTooLarge(EmbeddingError):
    """The server refused the request's size (HTTP 413): split the batch."""


class InputRejected(EmbeddingError):
    """The server refused the request's content (HTTP 400): some input in it is poison."""


@dataclass(frozen=True)
class EmbedderSpec:
    """Plain configuration of a provider; secrets are resolved before they get here."""

    provider: str
    model: str
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    batch_size: int = 32
    dimension: int | None = None  # only for providers that cannot report it (hashing)
    concurrency: int = 4
    timeout_s: float = 60.0
    max_attempts: int = 6
    deadline_s: float = 600.0
    backoff_s: float = 0.5


@dataclass
class EmbedderStats:
    requests: int = 0
    texts: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def latency_percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else 0.0


class Embedder(Protocol):
    model: str
    dimension: int
    max_concurrency: int
    stats: EmbedderStats

    async def prepare(self) -> None:
        """Talk to the provider once (learn the dimension); called before the first embed."""
        ...

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


async def embed_isolating(
    embed: Callable[[Sequence[str]], Awaitable[np.ndarray]], texts: Sequence[str], dimension: int
) -> tuple[np.ndarray, dict[int, str]]:
    """Embed `texts`, splitting batches the server finds too large and bisecting rejected
    ones down to the poison inputs. Returns the vectors (zero rows where rejected) and
    {position: the server's reason} for each rejected input."""
    try:
        return await embed(texts), {}
    except (BatchTooLarge, InputRejected) as err:
        if len(texts) == 1:
            return np.zeros((1, dimension), dtype=np.float32), {0: str(err)}
    middle = len(texts) // 2
    left, left_errors = await embed_isolating(embed, texts[:middle], dimension)
    right, right_errors = await embed_isolating(embed, texts[middle:], dimension)
    errors = {**left_errors, **{middle + i: reason for i, reason in right_errors.items()}}
    return np.concatenate([left, right]), errors


@contextlib.asynccontextmanager
async def open_embedder(spec: EmbedderSpec, *, prepare: bool = True) -> AsyncIterator[Embedder]:
    """Open the provider named in `spec` for the duration of the block. With prepare=False
    nothing is loaded or sent until the caller's `prepare()`: an unreachable server fails
    only the step that needs it, and a step with nothing to embed loads no model."""
    embedder: Embedder
    if spec.provider == "local":
        from ingest_assets.resources.providers.local import LocalEmbedder

        embedder = LocalEmbedder(spec)
        if prepare:
            await embedder.prepare()
        yield embedder
    elif spec.provider == "hashing":
        from ingest_assets.resources.providers.hashing import HashingEmbedder

        yield HashingEmbedder(spec)
    elif spec.provider in ("openai", "tei", "ollama"):
        from ingest_assets.resources.providers.http import open_http_embedder

        async with open_http_embedder(spec) as embedder:
            if prepare:
                await embedder.prepare()
            yield embedder
    else:
        raise EmbeddingError(
            f"unknown embedding provider {spec.provider!r}; "
            "use local, hashing, openai, tei or ollama"
        )
