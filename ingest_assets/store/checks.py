"""Queries behind the asset checks that guard the index."""

from __future__ import annotations

import psycopg
from psycopg import sql


def chunks_without_vector(
    conn: psycopg.Connection, table: str, scope: dict[str, list[int]] | None = None
) -> tuple[int, list[str]]:
    """Live chunks with no vector in `table`, over every source or only the shards in
    `scope` ({source: shards}): (count, a few 'source:doc_id' samples)."""
    pairs = None
    if scope is not None:
        pairs = [f"{source}|{shard}" for source, shards in scope.items() for shard in shards]
    rows = conn.execute(
        sql.SQL(
            "SELECT d.source || ':' || d.doc_id FROM chunks c "
            "JOIN documents d ON d.id = c.document_id "
            "WHERE d.deleted_at IS NULL "
            "AND (%s::text[] IS NULL OR d.source || '|' || d.shard = ANY(%s::text[])) "
            "AND NOT EXISTS (SELECT 1 FROM {} v WHERE v.text_hash = c.text_hash)"
        ).format(sql.Identifier(table)),
        (pairs, pairs),
    ).fetchall()
    return len(rows), sorted({r[0] for r in rows})[:10]


def vector_dimensions(conn: psycopg.Connection, table: str) -> list[int]:
    """Distinct dimensions of the vectors stored in `table`. A column declared `vector(n)`
    holds only n-dimensional vectors (PostgreSQL refuses others on insert), so its
    declaration answers without reading a row: a scan took ~0.3 s a run at 164,000 vectors."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = to_regclass(quote_ident(%s)) AND attname = 'embedding'",
        (table,),
    ).fetchone()
    if row and row[0] > 0:
        exists = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        ).fetchone()
        return [row[0]] if exists and exists[0] else []
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT vector_dims(embedding) FROM {}").format(sql.Identifier(table))
    )
    return sorted(r[0] for r in rows)


def chunks_of_deleted_documents(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE d.deleted_at IS NOT NULL OR d.quarantined_at IS NOT NULL"
    ).fetchone()
    return int(row[0]) if row else 0


def quarantined(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(source, doc_id, reason) of every quarantined live document."""
    rows = conn.execute(
        "SELECT source, doc_id, coalesce(last_error, '') FROM documents "
        "WHERE quarantined_at IS NOT NULL AND deleted_at IS NULL ORDER BY source, doc_id"
    )
    return [(r[0], r[1], r[2]) for r in rows]
