"""Digests of a shard's (document id, fingerprint) pairs: what a change sensor's cursor and
run keys remember of a listing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shard_digests(entries: Iterable[tuple[str, int, str | None]]) -> dict[int, str]:
    """shard -> digest of its sorted (doc_id, fingerprint) pairs; shards with no documents
    are absent. Order of `entries` does not matter."""
    by_shard: dict[int, list[tuple[str, str]]] = {}
    for doc_id, shard, fingerprint in entries:
        by_shard.setdefault(shard, []).append((doc_id, fingerprint or ""))
    digests = {}
    for shard, pairs in by_shard.items():
        digest = hashlib.sha1()
        for doc_id, fingerprint in sorted(pairs):
            digest.update(doc_id.encode("utf-8", "surrogateescape") + b"\x00")
            digest.update(fingerprint.encode() + b"\x01")
        digests[shard] = digest.hexdigest()[:16]
    return digests
