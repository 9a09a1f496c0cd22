"""Per-model vector tables keyed by the embedding input's hash, written with binary COPY."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ingest_assets.store.streaming import stream_rows


class DimensionMismatch(Exception):
    pass


@dataclass(frozen=True)
class PendingText:
    text_hash: bytes
    shard: int
    context: str
    text: str
    token_count: int


def vector_table_name(model: str) -> str:
    """A readable, collision-free table name for a model: vectors_<slug>_<hash>."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40]
    digest = hashlib.sha1(model.encode()).hexdigest()[:8]
    return f"vectors_{slug}_{digest}"


def ensure_model_table(
    conn: psycopg.Connection, model: str, dimension: int, settings: dict[str, Any] | None = None
) -> str:
    """Create the model's vector table on first use; a known model must keep its dimension.
    `settings` (how to reach the model, no secrets) are recorded, so a process configured to
    build another model can still embed for this one while it serves."""
    table = vector_table_name(model)
    with conn.transaction():
        # No conflict target: runs registering the same model at once race on both unique
        # keys (name, table_name), and the loser must wait and skip, whichever key it hits.
        conn.execute(
            "INSERT INTO embedding_models (name, dimension, table_name) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (model, dimension, table),
        )
        row = conn.execute(
            "SELECT dimension, table_name FROM embedding_models WHERE name = %s", (model,)
        ).fetchone()
        if row is None:
            raise RuntimeError(f"model {model!r}: its table name {table} is taken by another model")
        if row[0] != dimension:
            raise DimensionMismatch(
                f"model {model!r} returns {dimension}-dimensional vectors, but its table "
                f"{row[1]} holds {row[0]}-dimensional ones; drop the model or rename it"
            )
        if settings is not None:
            conn.execute(
                "UPDATE embedding_models SET settings = %s WHERE name = %s "
                "AND settings IS DISTINCT FROM %s",
                (Jsonb(settings), model, Jsonb(settings)),
            )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (text_hash bytea PRIMARY KEY, "
                "embedding vector({}) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(table), sql.Literal(dimension))
        )
    return table


def model_table(conn: psycopg.Connection, model: str) -> tuple[str, int] | None:
    row = conn.execute(
        "SELECT table_name, dimension FROM embedding_models WHERE name = %s", (model,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def _pending_query(table: str) -> sql.Composed:
    return sql.SQL(
        "SELECT DISTINCT ON (c.text_hash) c.text_hash, d.shard, c.context, c.text, c.token_count "
        "FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE d.source = %s AND d.shard = ANY(%s) AND d.deleted_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM {} v WHERE v.text_hash = c.text_hash)"
    ).format(sql.Identifier(table))


def count_pending_texts(
    conn: psycopg.Connection, table: str, source: str, shards: Sequence[int]
) -> int:
    query = sql.SQL("SELECT count(*) FROM ({}) p").format(_pending_query(table))
    row = conn.execute(query, (source, list(shards))).fetchone()
    return int(row[0]) if row else 0


def pending_texts(
    conn: psycopg.Connection, table: str, source: str, shards: Sequence[int], batch: int = 1024
) -> Iterator[list[PendingText]]:
    """Distinct chunk texts of the shards with no vector yet, streamed (server cursor)."""
    query = _pending_query(table)
    for rows in stream_rows(conn, "pending_texts", query, (source, list(shards)), batch):
        yield [PendingText(*row) for row in rows]


def write_vectors(
    conn: psycopg.Connection, table: str, hashes: Sequence[bytes], vectors: np.ndarray
) -> set[bytes]:
    """Store vectors; a text embedded meanwhile by a concurrent run is kept, not duplicated.
    Returns the hashes of the rows this call added."""
    dimension = vectors.shape[1]
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS vector_staging "
                "(text_hash bytea, embedding vector({})) ON COMMIT DELETE ROWS"
            ).format(sql.Literal(dimension))
        )
        with conn.cursor().copy(
            "COPY vector_staging (text_hash, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.write(binary_copy_rows(hashes, vectors))
        inserted = conn.execute(
            sql.SQL(
                "INSERT INTO {} (text_hash, embedding) SELECT text_hash, embedding "
                "FROM vector_staging ON CONFLICT (text_hash) DO NOTHING RETURNING text_hash"
            ).format(sql.Identifier(table))
        )
        return {bytes(row[0]) for row in inserted}


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, no extension
_COPY_TRAILER = b"\xff\xff"


def binary_copy_rows(hashes: Sequence[bytes], vectors: np.ndarray) -> bytes:
    """The whole binary COPY stream of (text_hash bytea, embedding vector) rows, built by numpy
    in one go instead of a Python call per row. pgvector's binary vector: int16 dimension,
    int16 unused, big-endian float32s."""
    count, dimension = vectors.shape
    width = len(hashes[0]) if hashes else 0
    if len(hashes) != count or any(len(h) != width for h in hashes):
        raise ValueError("one hash per vector, all of the same length")
    rows = np.empty(
        count,
        dtype=np.dtype(
            [
                ("fields", ">i2"),
                ("hash_size", ">i4"),
                ("hash", f"V{width}"),
                ("vector_size", ">i4"),
                ("dimension", ">i2"),
                ("unused", ">i2"),
                ("values", ">f4", (dimension,)),
            ]
        ),
    )
    rows["fields"] = 2
    rows["hash_size"] = width
    rows["hash"] = np.frombuffer(b"".join(hashes), dtype=f"V{width}")
    rows["vector_size"] = 4 + 4 * dimension
    rows["dimension"] = dimension
    rows["unused"] = 0
    rows["values"] = vectors
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def coverage_by_shard(
    conn: psycopg.Connection, table: str, source: str, shards: Sequence[int]
) -> dict[int, tuple[int, int, int]]:
    """shard -> (live chunks, live chunks with a vector, distinct chunk texts)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT d.shard, count(*), count(v.text_hash), count(DISTINCT c.text_hash) "
            "FROM chunks c JOIN documents d ON d.id = c.document_id "
            "LEFT JOIN {} v ON v.text_hash = c.text_hash "
            "WHERE d.source = %s AND d.shard = ANY(%s) AND d.deleted_at IS NULL GROUP BY d.shard"
        ).format(sql.Identifier(table)),
        (source, list(shards)),
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def texts_without_vector(
    conn: psycopg.Connection, table: str | None
) -> tuple[list[tuple[str, int, int, int, int]], tuple[int, int]]:
    """What a model still needs: per source (source, live chunks, distinct texts without a
    vector in `table`, their tokens, distinct texts with one), and over all sources (texts,
    tokens), each distinct text once. `table` None: the model has no vectors yet."""
    vectors = sql.Identifier(table) if table else sql.SQL("(SELECT NULL::bytea AS text_hash)")
    texts = sql.SQL(
        "SELECT DISTINCT {} c.text_hash, c.token_count, v.text_hash IS NOT NULL AS done "
        "FROM chunks c JOIN documents d ON d.id = c.document_id "
        "LEFT JOIN {} v ON v.text_hash = c.text_hash WHERE d.deleted_at IS NULL"
    )
    per_source = conn.execute(
        sql.SQL(
            "WITH t AS ({}), n AS (SELECT d.source, count(*) AS chunks FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE d.deleted_at IS NULL "
            "GROUP BY d.source) "
            "SELECT t.source, n.chunks, count(*) FILTER (WHERE NOT done), "
            "coalesce(sum(token_count) FILTER (WHERE NOT done), 0), count(*) FILTER (WHERE done) "
            "FROM t JOIN n USING (source) GROUP BY t.source, n.chunks ORDER BY t.source"
        ).format(texts.format(sql.SQL("d.source,"), vectors))
    ).fetchall()
    total = conn.execute(
        sql.SQL("SELECT count(*), coalesce(sum(token_count), 0) FROM ({}) t WHERE NOT done").format(
            texts.format(sql.SQL(""), vectors)
        )
    ).fetchone()
    assert total is not None
    rows = [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in per_source]
    return rows, (int(total[0]), int(total[1]))


def list_models(conn: psycopg.Connection) -> list[tuple[str, int, str, int]]:
    """(model, dimension, table, vectors) of every model with a vector table."""
    models = conn.execute(
        "SELECT name, dimension, table_name FROM embedding_models ORDER BY name"
    ).fetchall()
    counted = []
    for name, dimension, table in models:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        counted.append((name, dimension, table, row.fetchone()[0]))  # type: ignore[index]
    return counted


def learned_batch_items(conn: psycopg.Connection, model: str, key: dict[str, Any]) -> int | None:
    """The batch size steps settled on for `model`, if it was learned under the same `key`
    (the server and the configured batch size)."""
    row = conn.execute(
        "SELECT learned_batch FROM embedding_models WHERE name = %s", (model,)
    ).fetchone()
    learned = row[0] if row else None
    if not learned or learned.get("key") != key:
        return None
    return int(learned["items"])


def record_batch_items(
    conn: psycopg.Connection, model: str, key: dict[str, Any], items: int
) -> None:
    learned = Jsonb({"key": key, "items": items})
    conn.execute(
        "UPDATE embedding_models SET learned_batch = %s WHERE name = %s "
        "AND learned_batch IS DISTINCT FROM %s",
        (learned, model, learned),
    )


def stored_settings(conn: psycopg.Connection, model: str) -> dict[str, Any] | None:
    """The settings recorded when the model's vectors were last built."""
    row = conn.execute("SELECT settings FROM embedding_models WHERE name = %s", (model,)).fetchone()
    return row[0] if row else None


def drop_model(conn: psycopg.Connection, model: str) -> bool:
    """Drop a model's vector table and its record; False when the model is unknown."""
    found = model_table(conn, model)
    if found is None:
        return False
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(found[0])))
        conn.execute("DELETE FROM embedding_models WHERE name = %s", (model,))
    return True
