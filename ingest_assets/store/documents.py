"""Per-document state: fingerprints, content, tombstones, attempts and quarantine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class KnownDocument:
    fingerprint: str | None
    content_hash: str | None
    deleted: bool
    quarantined: bool
    attempts: int


@dataclass(frozen=True)
class DocumentContent:
    id: str
    source: str
    doc_id: str
    shard: int
    uri: str
    fingerprint: str
    content_hash: str
    title: str | None
    markup: str
    body: str | None
    quarantine_reason: str | None = None  # set: the content cannot be extracted


def known_documents(
    conn: psycopg.Connection, source: str, shards: Sequence[int]
) -> dict[str, KnownDocument]:
    rows = conn.execute(
        "SELECT doc_id, fingerprint, content_hash, deleted_at IS NOT NULL, "
        "quarantined_at IS NOT NULL, attempts "
        "FROM documents WHERE source = %s AND shard = ANY(%s)",
        (source, list(shards)),
    )
    return {row[0]: KnownDocument(*row[1:]) for row in rows}


def save_contents(conn: psycopg.Connection, contents: Sequence[DocumentContent]) -> None:
    """Insert or replace documents' extracted content; their chunks follow in the chunks stage."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO documents (id, source, doc_id, shard, uri, fingerprint, content_hash, "
            " title, markup, body, attempts, last_error, quarantined_at, deleted_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, "
            " CASE WHEN %s::text IS NULL THEN NULL ELSE now() END, NULL) "
            "ON CONFLICT (id) DO UPDATE SET shard = EXCLUDED.shard, uri = EXCLUDED.uri, "
            " fingerprint = EXCLUDED.fingerprint, content_hash = EXCLUDED.content_hash, "
            " title = EXCLUDED.title, markup = EXCLUDED.markup, body = EXCLUDED.body, "
            " attempts = 0, last_error = EXCLUDED.last_error, "
            " quarantined_at = EXCLUDED.quarantined_at, deleted_at = NULL, updated_at = now()",
            [
                (
                    c.id,
                    c.source,
                    c.doc_id,
                    c.shard,
                    c.uri,
                    c.fingerprint,
                    c.content_hash,
                    c.title,
                    c.markup,
                    c.body,
                    c.quarantine_reason,
                    c.quarantine_reason,
                )
                for c in contents
            ],
        )
    broken = [c.id for c in contents if c.quarantine_reason is not None]
    if broken:
        conn.execute("DELETE FROM chunks WHERE document_id = ANY(%s)", (broken,))


def touch_fingerprints(
    conn: psycopg.Connection, source: str, fingerprints: Sequence[tuple[str, str]]
) -> None:
    """Record new fingerprints of documents whose content hash did not change."""
    conn.execute(
        "UPDATE documents d SET fingerprint = v.fingerprint, attempts = 0, last_error = NULL "
        "FROM unnest(%s::text[], %s::text[]) AS v(doc_id, fingerprint) "
        "WHERE d.source = %s AND d.doc_id = v.doc_id",
        ([f[0] for f in fingerprints], [f[1] for f in fingerprints], source),
    )


def record_read_failure(
    conn: psycopg.Connection,
    *,
    id: str,
    source: str,
    doc_id: str,
    shard: int,
    uri: str,
    error: str,
    max_attempts: int,
) -> bool:
    """Count a failed attempt; returns True when the document is now quarantined."""
    row = conn.execute(
        "INSERT INTO documents (id, source, doc_id, shard, uri, attempts, last_error) "
        "VALUES (%s, %s, %s, %s, %s, 1, %s) "
        "ON CONFLICT (id) DO UPDATE SET attempts = documents.attempts + 1, "
        " last_error = EXCLUDED.last_error, updated_at = now() "
        "RETURNING attempts",
        (id, source, doc_id, shard, uri, error),
    ).fetchone()
    assert row is not None
    if row[0] >= max_attempts:
        # Out of search too: its last readable text may no longer be what the file holds.
        conn.execute(
            "UPDATE documents SET quarantined_at = now(), chunked_hash = NULL WHERE id = %s", (id,)
        )
        conn.execute("DELETE FROM chunks WHERE document_id = %s", (id,))
        return True
    return False


def tombstone(conn: psycopg.Connection, source: str, doc_ids: Sequence[str]) -> int:
    """Mark documents deleted and drop their chunks in the same transaction."""
    if not doc_ids:
        return 0
    conn.execute(
        "DELETE FROM chunks c USING documents d WHERE c.document_id = d.id "
        "AND d.source = %s AND d.doc_id = ANY(%s)",
        (source, list(doc_ids)),
    )
    cur = conn.execute(
        "UPDATE documents SET deleted_at = now(), body = NULL, chunked_hash = NULL, "
        "updated_at = now() WHERE source = %s AND doc_id = ANY(%s) AND deleted_at IS NULL",
        (source, list(doc_ids)),
    )
    return cur.rowcount


def quarantined_documents(
    conn: psycopg.Connection, source: str, shards: Sequence[int] | None = None
) -> list[tuple[str, int, str]]:
    """(doc_id, shard, reason) of quarantined live documents."""
    wanted = list(shards) if shards is not None else None
    rows = conn.execute(
        "SELECT doc_id, shard, coalesce(last_error, '') FROM documents "
        "WHERE source = %s AND quarantined_at IS NOT NULL AND deleted_at IS NULL "
        "AND (%s::int[] IS NULL OR shard = ANY(%s::int[])) ORDER BY doc_id",
        (source, wanted, wanted),
    )
    return [(r[0], r[1], r[2]) for r in rows]
