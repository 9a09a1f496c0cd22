"""Deterministic ids and shard assignment; never Python's salted `hash()`."""

from __future__ import annotations

import hashlib

_SEP = b"\x1f"


def document_id(source: str, doc_id: str) -> str:
    """Stable id of a document: the same source and document id give the same row everywhere."""
    return hashlib.sha1(
        source.encode() + _SEP + doc_id.encode("utf-8", "surrogateescape")
    ).hexdigest()


def shard_of(doc_id: str, shards: int) -> int:
    """Hash bucket of a document within its source: sha1(doc_id) mod shards."""
    digest = hashlib.sha1(doc_id.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_key(shard: int) -> str:
    """Partition key of a shard: zero-padded so keys sort in shard order."""
    return f"{shard:04d}"


def content_hash(data: bytes) -> str:
    """Hash of a document's raw bytes, the second, exact change test after the fingerprint."""
    return hashlib.sha256(data).hexdigest()


def text_hash(text: str) -> bytes:
    """Key of an embedding: identical embedding input is embedded once across documents."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def chunk_id(document: str, ordinal: int, digest: bytes) -> str:
    """Stable chunk id: same document, position and text give the same id across re-runs."""
    return hashlib.sha1(
        document.encode() + _SEP + str(ordinal).encode() + _SEP + digest
    ).hexdigest()
