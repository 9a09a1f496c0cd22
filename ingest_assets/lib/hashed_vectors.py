"""Deterministic text vectors from hashed words: similar texts get similar vectors.

Not a semantic model. It stands in for one in tests and benchmarks, where the numbers must be
reproducible and free, and search over it still means something (shared words score high).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=200_000)
def _slot(word: str, dimension: int) -> tuple[int, float]:
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % dimension, (1.0 if value >> 63 else -1.0)


def hashed_vectors(texts: Sequence[str], dimension: int) -> np.ndarray:
    """One L2-normalised float32 row per text; an empty text gets a fixed unit vector."""
    out = np.zeros((len(texts), dimension), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            index, sign = _slot(word, dimension)
            out[row, index] += sign
        norm = float(np.linalg.norm(out[row]))
        if norm == 0.0:
            out[row, 0] = 1.0
        else:
            out[row] /= norm
    return out
