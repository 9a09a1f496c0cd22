"""Per-shard locks: two runs over the same shard (a sensor's and a backfill's, say) take
turns on each stage instead of interleaving their writes."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence

import psycopg


def _lock_key(stage: str, source: str, shard: int) -> int:
    digest = hashlib.sha1(f"{stage}\x1f{source}\x1f{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def shard_locks(
    conn: psycopg.Connection, stage: str, source: str, shards: Sequence[int]
) -> Iterator[None]:
    """Hold session advisory locks on the shards for the block. Taken in sorted key order,
    so runs over overlapping ranges cannot deadlock."""
    keys = sorted({_lock_key(stage, source, shard) for shard in shards})
    for key in keys:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        yield
    finally:
        for key in reversed(keys):
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
