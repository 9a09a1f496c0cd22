"""A throwaway database with a `notes` table, in the test session's PostgreSQL: what a table
source reads."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingest_assets.database import ensure_database


@contextlib.contextmanager
def notes_database(pg_url: str, notes: Iterable[tuple[str, str]]) -> Iterator[str]:
    """Yields the DSN of a new database whose `notes` table holds (title, body) rows, ids from
    1; the database is dropped afterwards."""
    name = f"notes_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_url, name)
    dsn = make_conninfo(pg_url, dbname=name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE notes (id serial PRIMARY KEY, title text, body text NOT NULL,"
                " archived boolean NOT NULL DEFAULT false,"
                " updated_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
            for title, body in notes:
                conn.execute("INSERT INTO notes (title, body) VALUES (%s, %s)", (title, body))
        yield dsn
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
