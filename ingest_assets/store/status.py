"""Per-source counts for `ingest status`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class SourceStatus:
    source: str
    location: str
    documents: int
    deleted: int
    quarantined: int
    pending_chunking: int
    chunks: int
    chunks_with_vector: int

    @property
    def pending_embedding(self) -> int:
        return self.chunks - self.chunks_with_vector

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "pending_embedding": self.pending_embedding}


def source_status(conn: psycopg.Connection, table: str | None, chunker: str) -> list[SourceStatus]:
    vectors = (
        sql.SQL("LEFT JOIN {} v ON v.text_hash = c.text_hash").format(sql.Identifier(table))
        if table
        else sql.SQL("LEFT JOIN (SELECT NULL::bytea AS text_hash) v ON false")
    )
    rows = conn.execute(
        sql.SQL(
            "WITH docs AS ("
            " SELECT source,"
            "  count(*) FILTER (WHERE deleted_at IS NULL) AS live,"
            "  count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted,"
            "  count(*) FILTER (WHERE deleted_at IS NULL AND quarantined_at IS NOT NULL) AS bad,"
            "  count(*) FILTER (WHERE deleted_at IS NULL AND quarantined_at IS NULL"
            "   AND body IS NOT NULL AND (chunked_hash IS DISTINCT FROM content_hash"
            "   OR chunker IS DISTINCT FROM %s)) AS unchunked"
            " FROM documents GROUP BY source),"
            " chunk_counts AS ("
            " SELECT d.source, count(*) AS chunks, count(v.text_hash) AS embedded"
            " FROM chunks c JOIN documents d ON d.id = c.document_id {}"
            " WHERE d.deleted_at IS NULL GROUP BY d.source)"
            "SELECT s.name, s.location, coalesce(docs.live, 0), coalesce(docs.deleted, 0),"
            " coalesce(docs.bad, 0), coalesce(docs.unchunked, 0),"
            " coalesce(cc.chunks, 0), coalesce(cc.embedded, 0)"
            " FROM sources s LEFT JOIN docs ON docs.source = s.name"
            " LEFT JOIN chunk_counts cc ON cc.source = s.name ORDER BY s.name"
        ).format(vectors),
        (chunker,),
    )
    return [SourceStatus(*row) for row in rows]
