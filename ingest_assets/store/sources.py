"""The source registry table."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from psycopg.types.json import Jsonb

from ingest_assets.sources.registry import SourceRecord
from ingest_assets.store.streaming import stream_rows


def register_source(conn: psycopg.Connection, record: SourceRecord) -> None:
    conn.execute(
        "INSERT INTO sources (name, kind, location, options) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, location = EXCLUDED.location, "
        "options = EXCLUDED.options, updated_at = now() "
        "WHERE (sources.kind, sources.location, sources.options) "
        "IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.location, EXCLUDED.options)",
        (record.name, record.kind, record.location, Jsonb(dict(record.options))),
    )


def get_source(conn: psycopg.Connection, name: str) -> SourceRecord | None:
    row = conn.execute(
        "SELECT name, kind, location, options FROM sources WHERE name = %s", (name,)
    ).fetchone()
    return SourceRecord(*row) if row else None


def list_sources(conn: psycopg.Connection) -> list[SourceRecord]:
    rows = conn.execute(
        "SELECT name, kind, location, options FROM sources ORDER BY name"
    ).fetchall()
    return [SourceRecord(*row) for row in rows]


def delete_source(conn: psycopg.Connection, name: str) -> int:
    """Forget a source and its documents and chunks (vectors stay: other texts may share them).
    Returns the number of documents removed."""
    with conn.transaction():
        removed = conn.execute("DELETE FROM documents WHERE source = %s", (name,)).rowcount
        conn.execute("DELETE FROM sources WHERE name = %s", (name,))
    return removed


def document_fingerprints(
    conn: psycopg.Connection, source: str
) -> Iterator[tuple[str, int, str | None]]:
    """(doc_id, shard, fingerprint) of the source's live documents, streamed."""
    query = (
        "SELECT doc_id, shard, fingerprint FROM documents WHERE source = %s AND deleted_at IS NULL"
    )
    for rows in stream_rows(conn, "document_fingerprints", query, (source,), 5000):
        yield from rows


def record_skipped(
    conn: psycopg.Connection, source: str, shards: list[int], by_shard: dict[int, dict]
) -> None:
    """What the scan of `shards` passed over, replacing what an earlier scan recorded."""
    conn.execute(
        "DELETE FROM skipped_entries WHERE source = %s AND shard = ANY(%s)", (source, shards)
    )
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO skipped_entries (source, shard, reasons) VALUES (%s, %s, %s)",
            [(source, shard, Jsonb(reasons)) for shard, reasons in by_shard.items() if reasons],
        )
