"""Server-side cursors that stream large results in batches (bounded memory)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql


def stream_rows(
    conn: psycopg.Connection,
    name: str,
    query: str | sql.Composed,
    params: Any,
    batch: int,
) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the query's rows `batch` at a time. A cursor left open when the caller stops
    early, or when the connection died under it, is closed quietly: closing is not worth a
    second error on top of the one that is already propagating."""
    cursor = conn.cursor(name=name)
    cursor.itersize = batch
    try:
        cursor.execute(query, params)  # type: ignore[arg-type]
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        with contextlib.suppress(psycopg.Error):
            cursor.close()
