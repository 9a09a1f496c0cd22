"""Splitting too-large batches and bisecting rejected ones down to the poison inputs."""

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from ingest_assets.embedders.base import (
    BatchTooLarge,
    EmbeddingError,
    InputRejected,
    embed_isolating,
)


class Server:
    """Refuses batches above `max_batch` (413) and any batch holding a poison text (400)."""

    def __init__(self, max_batch: int = 1000, poison: frozenset[str] = frozenset()):
        self.max_batch = max_batch
        self.poison = poison
        self.calls: list[int] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        if len(texts) > self.max_batch:
            raise BatchTooLarge("HTTP 413: batch too large")
        bad = [t for t in texts if t in self.poison]
        if bad:
            raise InputRejected(f"HTTP 400: rejected {bad[0]}")
        return np.array([[float(t.removeprefix("t")), 1.0] for t in texts], dtype=np.float32)


def run(server: Server, texts: list[str]):
    return asyncio.run(embed_isolating(server.embed, texts, 2))


@pytest.mark.parametrize(
    ("count", "max_batch", "poison", "rejected"),
    [
        (8, 100, set(), set()),
        (8, 3, set(), set()),
        (8, 1, set(), set()),
        (8, 100, {"t3"}, {3}),
        (9, 100, {"t0", "t8"}, {0, 8}),
        (16, 5, {"t7", "t8", "t9"}, {7, 8, 9}),
        (1, 100, {"t0"}, {0}),
    ],
)
def test_every_good_text_gets_its_vector_and_only_poison_is_rejected(
    count, max_batch, poison, rejected
):
    texts = [f"t{i}" for i in range(count)]
    vectors, errors = run(Server(max_batch, frozenset(poison)), texts)

    assert set(errors) == rejected
    for i in range(count):
        expected = [0.0, 0.0] if i in rejected else [float(i), 1.0]
        assert vectors[i].tolist() == expected
    for i in rejected:
        assert f"t{i}" in errors[i] and "HTTP 400" in errors[i]


def test_one_poison_text_costs_logarithmic_requests():
    server = Server(poison=frozenset({"t37"}))
    run(server, [f"t{i}" for i in range(64)])
    assert len(server.calls) <= 2 * 7 + 1


def test_other_errors_are_not_swallowed():
    async def broken(texts: Sequence[str]) -> np.ndarray:
        raise EmbeddingError("server down")

    with pytest.raises(EmbeddingError, match="server down"):
        asyncio.run(embed_isolating(broken, ["a", "b"], 2))
