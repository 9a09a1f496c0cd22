"""Packing of texts into embedding requests by item count and token count."""

from __future__ import annotations

from collections.abc import Sequence


def batch_indices(token_lengths: Sequence[int], max_items: int, max_tokens: int) -> list[list[int]]:
    """Split positions 0..n-1, in order, into batches of at most `max_items` items and
    `max_tokens` tokens. An item longer than `max_tokens` travels alone rather than being lost.
    """
    if max_items < 1 or max_tokens < 1:
        raise ValueError("max_items and max_tokens must be positive")
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index, length in enumerate(token_lengths):
        if current and (len(current) >= max_items or tokens + length > max_tokens):
            batches.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += length
    if current:
        batches.append(current)
    return batches
