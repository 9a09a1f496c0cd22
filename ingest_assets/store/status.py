"""Per-source counts for `ingest status`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class SourceStatus:
    source: str
    location: str
    documents: int
    deleted: int
    quarantined: int
    pending_chunking: int  # extracted documents whose chunks are missing or stale
    chunks: int
    chunks_with_vector: int  # for the active model
    failed_reads: int = 0  # read failed, to be retried on the next runs (not quarantined yet)
    skipped: int = 0  # entries the last scans passed over (unsupported kinds, robots.txt)
    vectors_by_model: dict[str, int] = field(default_factory=dict)  # live chunks with a vector

    @property
    def pending_embedding(self) -> int:
        return self.chunks - self.chunks_with_vector

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "pending_embedding": self.pending_embedding}


def source_status(
    conn: psycopg.Connection,
    table: str | None,
    chunker: str,
    models: Sequence[tuple[str, str]] = (),
) -> list[SourceStatus]:
    """One row per registered source. `table` is the active model's vector table (None: no
    vectors yet); `models` are (model, table) pairs whose live chunks with a vector are counted
    per source, one join per table (each is keyed by text hash, so no join multiplies rows)."""
    joins: list[sql.Composable] = [
        sql.SQL("LEFT JOIN {} v ON v.text_hash = c.text_hash").format(sql.Identifier(table))
        if table
        else sql.SQL("LEFT JOIN (SELECT NULL::bytea AS text_hash) v ON false")
    ]
    counts: list[sql.Composable] = [sql.SQL("count(v.text_hash)")]
    for i, (_, model_table) in enumerate(models):
        alias = sql.Identifier(f"m{i}")
        if model_table == table:
            counts.append(sql.SQL("count(v.text_hash)"))
            continue
        joins.append(
            sql.SQL("LEFT JOIN {} {} ON {}.text_hash = c.text_hash").format(
                sql.Identifier(model_table), alias, alias
            )
        )
        counts.append(sql.SQL("count({}.text_hash)").format(alias))
    rows = conn.execute(
        sql.SQL(
            "WITH docs AS ("
            " SELECT source,"
            "  count(*) FILTER (WHERE deleted_at IS NULL) AS live,"
            "  count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted,"
            "  count(*) FILTER (WHERE deleted_at IS NULL AND quarantined_at IS NOT NULL) AS bad,"
            "  count(*) FILTER (WHERE deleted_at IS NULL AND quarantined_at IS NULL"
            "   AND body IS NOT NULL AND (chunked_hash IS DISTINCT FROM content_hash"
            "   OR chunker IS DISTINCT FROM %s)) AS unchunked,"
            "  count(*) FILTER (WHERE deleted_at IS NULL AND quarantined_at IS NULL"
            "   AND attempts > 0) AS failed_reads"
            " FROM documents GROUP BY source),"
            " chunk_counts AS ("
            " SELECT d.source, count(*) AS chunks, ARRAY[{}]::bigint[] AS embedded"
            " FROM chunks c JOIN documents d ON d.id = c.document_id {}"
            " WHERE d.deleted_at IS NULL GROUP BY d.source)"
            "SELECT s.name, s.location, coalesce(docs.live, 0), coalesce(docs.deleted, 0),"
            " coalesce(docs.bad, 0), coalesce(docs.unchunked, 0),"
            " coalesce(cc.chunks, 0), cc.embedded, coalesce(docs.failed_reads, 0),"
            " (SELECT coalesce(sum((r.value->>'count')::int), 0) FROM skipped_entries k,"
            "  jsonb_each(k.reasons) r WHERE k.source = s.name)"
            " FROM sources s LEFT JOIN docs ON docs.source = s.name"
            " LEFT JOIN chunk_counts cc ON cc.source = s.name ORDER BY s.name"
        ).format(sql.SQL(", ").join(counts), sql.SQL(" ").join(joins)),
        (chunker,),
    )
    statuses = []
    for name, location, live, deleted, bad, unchunked, chunks, embedded, failed, skipped in rows:
        embedded = embedded or [0] * len(counts)  # a source without chunks
        statuses.append(
            SourceStatus(
                source=name,
                location=location,
                documents=live,
                deleted=deleted,
                quarantined=bad,
                pending_chunking=unchunked,
                chunks=chunks,
                chunks_with_vector=embedded[0],
                failed_reads=failed,
                skipped=skipped,
                vectors_by_model={m: n for (m, _), n in zip(models, embedded[1:], strict=True)},
            )
        )
    return statuses
