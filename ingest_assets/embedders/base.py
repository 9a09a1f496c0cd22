"""The embedder interface (an async embedder opened for one step or one command), its
errors, and what every provider shares: checking vectors and isolating rejected inputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
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
