"""Chunks of documents: which documents need (re-)chunking, and the atomic replacement."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg

from ingest_assets.lib.chunking import Chunk, vector_key
from ingest_assets.lib.hashing import chunk_id
from ingest_assets.store.streaming import stream_rows


@dataclass(frozen=True)
class DocumentToChunk:
    id: str
    doc_id: str
    shard: int
    title: str | None
    markup: str
    body: str
    content_hash: str
    chunked: bool  # chunked before (chunked_hash set): it may have chunks to replace


# Stale: another content, another chunker, or another text search configuration (the
# source's language changed; re-chunking yields the same texts, so no new vectors).
_STALE = (
    "source = %s AND shard = ANY(%s) AND deleted_at IS NULL "
    "AND quarantined_at IS NULL AND body IS NOT NULL "
    "AND (chunked_hash IS DISTINCT FROM content_hash OR chunker IS DISTINCT FROM %s "
    "OR ts_config IS DISTINCT FROM %s)"
)


def documents_to_chunk(
    conn: psycopg.Connection,
    source: str,
    shards: Sequence[int],
    chunker: str,
    ts_config: str,
    batch: int = 200,
) -> Iterator[list[DocumentToChunk]]:
    """Live documents whose chunks are missing or stale, streamed in batches (server cursor)."""
    query = (
        "SELECT id, doc_id, shard, title, markup, body, content_hash, "
        "chunked_hash IS NOT NULL FROM documents WHERE "
    )
    params = (source, list(shards), chunker, ts_config)
    for rows in stream_rows(conn, "documents_to_chunk", query + _STALE, params, batch):
        yield [DocumentToChunk(*row) for row in rows]


def count_documents_to_chunk(
    conn: psycopg.Connection, source: str, shards: Sequence[int], chunker: str, ts_config: str
) -> int:
    row = conn.execute(
        "SELECT count(*) FROM documents WHERE " + _STALE,
        (source, list(shards), chunker, ts_config),
    ).fetchone()
    return int(row[0]) if row else 0


def text_search_config_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether `name` (or `schema.name`) is a text search configuration (pg_ts_config) that
    the chunks' tsvector can use."""
    schema, _, config = name.rpartition(".")
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_ts_config c "
        "JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE c.cfgname = %(config)s "
        "AND (n.nspname = %(schema)s OR (%(schema)s = '' AND pg_ts_config_is_visible(c.oid))))",
        {"config": config, "schema": schema},
    ).fetchone()
    return bool(row and row[0])


def replace_chunks(
    conn: psycopg.Connection,
    chunked: Sequence[tuple[DocumentToChunk, Sequence[Chunk]]],
    chunker: str,
    ts_config: str,
) -> set[str]:
    """In one transaction: for each document whose content is still the one that was chunked,
    swap its old chunks for the new ones (full-text indexed with `ts_config`) and record the
    hash. Returns the ids replaced."""
    with conn.transaction():
        current = conn.execute(
            "UPDATE documents d SET chunked_hash = v.content_hash, chunker = %s, "
            "ts_config = %s, updated_at = now() "
            "FROM unnest(%s::text[], %s::text[]) AS v(id, content_hash) "
            "WHERE d.id = v.id AND d.content_hash = v.content_hash AND d.deleted_at IS NULL "
            "RETURNING d.id",
            (
                chunker,
                ts_config,
                [doc.id for doc, _ in chunked],
                [doc.content_hash for doc, _ in chunked],
            ),
        )
        replaced = {row[0] for row in current}
        if not replaced:
            return replaced
        # Chunks are written only here, with the document's chunked_hash, and dropped wherever
        # it is cleared: a document never chunked has none. On a first ingestion this DELETE
        # found nothing, for ~5 % of PostgreSQL's time.
        rechunked = [doc.id for doc, _ in chunked if doc.chunked and doc.id in replaced]
        if rechunked:
            conn.execute("DELETE FROM chunks WHERE document_id = ANY(%s)", (rechunked,))
        with conn.cursor().copy(
            "COPY chunks (id, document_id, ordinal, context, text, text_hash, token_count, "
            "ts_config) FROM STDIN"
        ) as copy:
            for doc, chunks in chunked:
                if doc.id not in replaced:
                    continue
                for chunk in chunks:
                    digest = vector_key(chunk.context, chunk.text)
                    copy.write_row(
                        (
                            chunk_id(doc.id, chunk.ordinal, digest),
                            doc.id,
                            chunk.ordinal,
                            chunk.context,
                            chunk.text,
                            digest,
                            chunk.token_count,
                            ts_config,
                        )
                    )
    return replaced


def quarantine_document(conn: psycopg.Connection, id: str, reason: str) -> None:
    conn.execute(
        "UPDATE documents SET quarantined_at = now(), last_error = %s, updated_at = now() "
        "WHERE id = %s",
        (reason, id),
    )
    conn.execute("DELETE FROM chunks WHERE document_id = %s", (id,))


def quarantine_texts(
    conn: psycopg.Connection, source: str, shards: Sequence[int], rejected: dict[bytes, str]
) -> list[tuple[str, int, str]]:
    """Quarantine the source's documents holding a chunk text the model refused, removing
    their chunks so the index stays complete. Returns (doc_id, shard, reason) for each."""
    if not rejected:
        return []
    with conn.transaction():
        rows = conn.execute(
            "UPDATE documents d SET quarantined_at = now(), updated_at = now(), "
            " last_error = d.doc_id || ': embedding rejected chunk ' || c.ordinal"
            " || ': ' || v.reason "
            "FROM chunks c, unnest(%s::bytea[], %s::text[]) AS v(text_hash, reason) "
            "WHERE c.text_hash = v.text_hash AND d.id = c.document_id AND d.source = %s "
            "AND d.shard = ANY(%s) AND d.deleted_at IS NULL "
            "RETURNING d.id, d.doc_id, d.shard, d.last_error",
            (list(rejected), list(rejected.values()), source, list(shards)),
        ).fetchall()
        conn.execute("DELETE FROM chunks WHERE document_id = ANY(%s)", ([r[0] for r in rows],))
    return [(r[1], r[2], r[3]) for r in rows]
