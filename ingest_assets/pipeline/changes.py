"""Which listed documents differ from what the index stored: the one comparison that the
change sensors (which shards need a run?) and the documents stage (which documents to fetch?)
both make. Cheap: it compares the listing's fingerprints (a file's size and mtime, a row's
version, a page's ETag) and reads nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ingest_assets.lib.hashing import shard_of
from ingest_assets.sources import DocumentRef

Verdict = Literal["new", "unchanged", "suspect", "retry"]


class StoredDocument(Protocol):
    """What the index remembers of a document (store.documents.KnownDocument has it all)."""

    @property
    def fingerprint(self) -> str | None: ...

    @property
    def deleted(self) -> bool: ...

    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True)
class StoredFingerprint:
    """A live document as the change sensors load it: only its fingerprint."""

    fingerprint: str | None
    deleted: bool = False
    attempts: int = 0


def classify(ref: DocumentRef, stored: StoredDocument | None) -> Verdict:
    """'new'; 'unchanged' (same fingerprint); 'retry' (same fingerprint, but its last read
    failed); or 'suspect' (fingerprint moved or unknown: fetch it and compare the content)."""
    if stored is None or stored.deleted:
        return "new"
    if ref.fingerprint is None or stored.fingerprint != ref.fingerprint:
        return "suspect"
    return "retry" if stored.attempts else "unchanged"


def gone(
    listed: Iterable[str], stored: Mapping[str, StoredDocument], unlisted_prefixes: Sequence[str]
) -> list[str]:
    """Stored live documents the listing no longer has, except under prefixes the listing
    could not see this time (an unreadable folder, a sitemap that failed): not deleted."""
    seen = set(listed)
    unseen = tuple(unlisted_prefixes)
    return [
        doc_id
        for doc_id, doc in stored.items()
        if not doc.deleted and doc_id not in seen and not doc_id.startswith(unseen)
    ]


def changed_shards(
    refs: Sequence[DocumentRef],
    stored: Mapping[str, StoredDocument],
    unlisted_prefixes: Sequence[str],
    shard_count: int,
) -> list[int]:
    """Shards with a document added, changed or deleted since the index last stored them. A
    document whose read failed is not a change: the failed shard's retry or backfill takes
    it again."""
    shards = {
        shard_of(ref.doc_id, shard_count)
        for ref in refs
        if classify(ref, stored.get(ref.doc_id)) in ("new", "suspect")
    }
    shards |= {
        shard_of(doc_id, shard_count)
        for doc_id in gone((r.doc_id for r in refs), stored, unlisted_prefixes)
    }
    return sorted(shards)
