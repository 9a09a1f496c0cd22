"""Cosine search over a model's vectors, joined back to live chunks and documents."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Hit:
    score: float
    source: str
    doc_id: str
    uri: str
    chunk: int
    context: str
    text: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def search(
    conn: psycopg.Connection,
    table: str,
    query: np.ndarray,
    k: int,
    source: str | None = None,
) -> list[Hit]:
    rows = conn.execute(
        sql.SQL(
            "SELECT 1 - (v.embedding <=> %(q)s) AS score, d.source, d.doc_id, d.uri, "
            "c.ordinal, c.context, c.text "
            "FROM {} v JOIN chunks c ON c.text_hash = v.text_hash "
            "JOIN documents d ON d.id = c.document_id "
            "WHERE d.deleted_at IS NULL AND d.quarantined_at IS NULL "
            "AND (%(source)s::text IS NULL OR d.source = %(source)s) "
            "ORDER BY v.embedding <=> %(q)s, d.doc_id, c.ordinal LIMIT %(k)s"
        ).format(sql.Identifier(table)),
        {"q": query.astype(np.float32), "source": source, "k": k},
    )
    return [Hit(float(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
