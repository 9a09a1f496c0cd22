"""The documents stage: list a source's shards, find what is new, changed or deleted, read
and extract it, and store it (deletions become tombstones). Plain functions over a connection;
the `raw_documents` asset calls `scan_shards` and turns its report into metadata."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from ingest_assets.database import Database
from ingest_assets.lib.extract import ExtractedDocument, ExtractionError, extract
from ingest_assets.lib.hashing import content_hash, document_id, shard_of
from ingest_assets.lib.webpage import WEBPAGE_SUFFIX, extract_webpage
from ingest_assets.pipeline.changes import classify, gone
from ingest_assets.pipeline.progress import StageProgress
from ingest_assets.sources import DocumentRef, Source, SourceReadError, open_source
from ingest_assets.sources.base import Fetched
from ingest_assets.store.documents import (
    DocumentContent,
    KnownDocument,
    known_documents,
    quarantined_documents,
    record_read_failure,
    save_contents,
    tombstone,
    touch_fingerprints,
)
from ingest_assets.store.locks import shard_locks
from ingest_assets.store.sources import get_source, record_skipped


class SourceNotRegistered(LookupError):
    """A partition of a source the database does not know (removed, or never added)."""


# Bump when extraction output changes for the same bytes; marks raw_documents stale.
EXTRACTOR_VERSION = "4"
MAX_READ_ATTEMPTS = 3
_WRITE_BATCH = 100


@dataclass
class ScanReport:
    counts: Counter[tuple[int, str]] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, reason), retryable
    skipped: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # (id, reason)
    slowest: list[tuple[float, str, int]] = field(default_factory=list)  # (s, doc_id, shard)

    def count(self, shard: int, outcome: str) -> None:
        self.counts[(shard, outcome)] += 1

    def note_duration(self, seconds: float, doc_id: str, shard: int) -> None:
        """Keep the slowest few documents per run, for the metadata."""
        self.slowest.append((seconds, doc_id, shard))
        if len(self.slowest) > 64:
            self.slowest = sorted(self.slowest, reverse=True)[:32]

    def slowest_in(self, shard: int) -> Iterable[str]:
        for seconds, doc_id, s in sorted(self.slowest, reverse=True):
            if s == shard:
                yield f"{doc_id}: {seconds:.2f}s"

    def for_shard(self, shard: int) -> dict[str, int]:
        outcomes = ("new", "changed", "unchanged", "deleted", "quarantined", "failed", "skipped")
        return {o: self.counts[(shard, o)] for o in outcomes}


def scan_source(
    conn: psycopg.Connection,
    source: Source,
    shards: list[int],
    shard_count: int,
    progress: StageProgress,
) -> ScanReport:
    report = ScanReport()
    wanted = set(shards)
    known = known_documents(conn, source.name, shards)
    refs = [r for r in source.list_documents() if shard_of(r.doc_id, shard_count) in wanted]
    progress.start(len(refs))
    pending: list[DocumentContent] = []
    same_content: list[tuple[str, str]] = []

    def flush() -> None:
        save_contents(conn, pending)
        touch_fingerprints(conn, source.name, same_content)
        conn.commit()
        pending.clear()
        same_content.clear()

    suspects: list[tuple[DocumentRef, str | None]] = []
    for ref in refs:
        previous = known.get(ref.doc_id)
        if classify(ref, previous) != "unchanged":
            # What we stored lets a web source ask "changed since?" (ETag, Last-Modified).
            usable = previous is not None and not previous.deleted and previous.attempts == 0
            suspects.append((ref, previous.fingerprint if usable and previous else None))
            continue
        outcome = "quarantined" if previous and previous.quarantined else "unchanged"
        report.count(shard_of(ref.doc_id, shard_count), outcome)
        progress.advance()

    started = time.perf_counter()
    for ref, fetched in source.fetch_all(suspects):
        shard = shard_of(ref.doc_id, shard_count)
        outcome, content = _take_document(
            conn, source.name, ref, fetched, shard, known.get(ref.doc_id), report
        )
        report.count(shard, outcome)
        if content is not None:
            pending.append(content)
        elif outcome == "unchanged" and isinstance(fetched, Fetched):
            same_content.append((ref.doc_id, fetched.fingerprint))
        if len(pending) + len(same_content) >= _WRITE_BATCH:
            flush()
        finished = time.perf_counter()
        if content is not None:
            report.note_duration(finished - started, ref.doc_id, shard)
        started = finished
        progress.advance()
    flush()

    for doc_id, reason in source.skipped:
        shard = shard_of(doc_id, shard_count)
        if shard in wanted:
            report.count(shard, "skipped")
            report.skipped.setdefault(shard, []).append((doc_id, reason))
    deleted = gone((r.doc_id for r in refs), known, source.unlisted_prefixes)
    tombstone(conn, source.name, deleted)
    conn.commit()
    for doc_id in deleted:
        report.count(shard_of(doc_id, shard_count), "deleted")
    return report


def _take_document(
    conn: psycopg.Connection,
    source: str,
    ref: DocumentRef,
    fetched: Fetched | SourceReadError,
    shard: int,
    previous: KnownDocument | None,
    report: ScanReport,
) -> tuple[str, DocumentContent | None]:
    """Judge, hash and extract one fetched document: (outcome, content to save or None)."""
    doc = document_id(source, ref.doc_id)
    if isinstance(fetched, SourceReadError):
        return _read_failed(conn, source, ref, fetched, shard, previous, report)
    if fetched.data is None:  # not modified since what we stored (an HTTP 304)
        return ("quarantined" if previous and previous.quarantined else "unchanged"), None
    data = fetched.data
    digest = content_hash(data)
    if previous is not None and not previous.deleted and previous.content_hash == digest:
        if not previous.quarantined:
            return "unchanged", None
        if previous.attempts == 0:
            return "quarantined", None  # the same bytes that could not be extracted
        # Quarantined because it could not be read, and now it can: save it again below.
    outcome = "new" if previous is None or previous.deleted else "changed"
    stored = DocumentContent(
        id=doc,
        source=source,
        doc_id=ref.doc_id,
        shard=shard,
        uri=ref.uri,
        fingerprint=fetched.fingerprint,
        content_hash=digest,
        title=None,
        markup="text",
        body=None,
    )
    try:
        extracted = extract_document(data, fetched.suffix, ref)
    except Exception as err:  # an extractor bug must not sink the shard: quarantine it
        reason = f"{ref.doc_id}: {err}"
        if not isinstance(err, ExtractionError):
            reason = f"{ref.doc_id}: extraction failed ({type(err).__name__}: {err})"[:300]
        return "quarantined", dataclasses.replace(stored, quarantine_reason=reason)
    content = dataclasses.replace(
        stored,
        title=fetched.title or extracted.title,
        markup=extracted.markup,
        body=extracted.text,
    )
    return outcome, content


def _read_failed(
    conn: psycopg.Connection,
    source: str,
    ref: DocumentRef,
    err: SourceReadError,
    shard: int,
    previous: KnownDocument | None,
    report: ScanReport,
) -> tuple[str, None]:
    """A source marks what retrying cannot fix: `gone` (deleted since it was listed: the same
    as not listed, so a tombstone if we knew it) and `permanent` (a FIFO, a link out of the
    folder, too large, no permission: quarantined at once instead of failing the run until the
    attempts run out). A quarantined read failure is read again next run."""
    if err.gone:
        if previous is None or previous.deleted:
            return "gone", None
        tombstone(conn, source, [ref.doc_id])
        conn.commit()
        return "deleted", None
    quarantined = record_read_failure(
        conn,
        id=document_id(source, ref.doc_id),
        source=source,
        doc_id=ref.doc_id,
        shard=shard,
        uri=ref.uri,
        error=str(err),
        max_attempts=1 if err.permanent else MAX_READ_ATTEMPTS,
    )
    conn.commit()
    if quarantined:
        return "quarantined", None
    report.failures.append((ref.doc_id, str(err)))
    return "failed", None


def extract_document(data: bytes, suffix: str, ref: DocumentRef) -> ExtractedDocument:
    """Web pages get main-content extraction (navigation and footers dropped); files the
    format's extractor."""
    if suffix == WEBPAGE_SUFFIX:
        return extract_webpage(data, ref.uri)
    return extract(data, suffix, name=ref.doc_id.rsplit("/", 1)[-1])


@dataclass
class ShardsScan:
    """One source's shards after the stage: the counts, how long it took, what was skipped
    (by shard, by reason) and what is quarantined, as (doc_id, shard, reason)."""

    report: ScanReport
    seconds: float
    skipped: dict[int, dict[str, dict]]
    quarantined: list[tuple[str, int, str]]


def scan_shards(
    db: Database, source_name: str, shards: list[int], shard_count: int, stage: StageProgress
) -> ShardsScan:
    """The stage for one source's shards, under their locks. Raises SourceNotRegistered,
    ValueError (a source record that cannot be opened) and SourceReadError (its listing
    failed; `permanent` says whether trying again can help)."""
    with db.connect() as conn, db.connect(autocommit=True) as locks:
        record = get_source(conn, source_name)
        if record is None:
            raise SourceNotRegistered(
                f"source {source_name!r} is not registered; add it with `ingest run` "
                "or `ingest source add`"
            )
        source = open_source(record)
        try:
            with shard_locks(locks, "raw_documents", source_name, shards):
                report = scan_source(conn, source, shards, shard_count, stage)
        finally:
            source.close()
        seconds = stage.finish()
        skipped = {shard: skipped_by_reason(report.skipped.get(shard, [])) for shard in shards}
        record_skipped(conn, source_name, shards, skipped)
        conn.commit()
        quarantined = quarantined_documents(conn, source_name, shards)
    return ShardsScan(report, seconds, skipped, quarantined)


def skipped_by_reason(entries: Iterable[tuple[str, str]], examples: int = 3) -> dict[str, dict]:
    """{"not a kind it reads: .svg": {"count": 2, "examples": ["img/logo.svg", ...]}, ...}"""
    reasons: dict[str, dict] = {}
    for doc_id, reason in entries:
        entry = reasons.setdefault(reason, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < examples:
            entry["examples"].append(doc_id)
    return reasons
