"""Connections to the pipeline's schema, its migrations, and databases beside it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg.vector import register_vector_info
from psycopg import sql
from psycopg.types import TypeInfo

from ingest_assets.sql import migrations
from ingest_assets.store.index_settings import check_shard_count

_MIGRATION_LOCK = 7_204_118_511  # pg_advisory_xact_lock key: one migrating process at a time
# Per process: what was already migrated, and pgvector's type per database URL.
_migrated: set[tuple[str, str, int | None]] = set()
_vector_types: dict[str, TypeInfo] = {}


def url_for_database(url: str, database: str) -> str:
    """The same server's URL (a postgresql:// URL) with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def ensure_database(url: str, database: str, *, synchronous_commit: bool = True) -> None:
    """Create `database` on the server at `url` when missing (Dagster's storage lives there).

    Without synchronous commit a crash may lose the last few commits, never consistency:
    right for Dagster's event log on a local server, where each event is its own commit."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            name = sql.Identifier(database)
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                return  # another process created it first
            if not synchronous_commit:
                conn.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(name))


class Database:
    """Connections to the pipeline's schema, migrated on first use in each process. With
    `shards`, the first use also checks the shard count against the one the index records."""

    def __init__(self, url: str, schema: str = "ingest", shards: int | None = None):
        self.url = url
        self.schema = schema
        self.shards = shards

    @contextlib.contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        self.migrate()
        with psycopg.connect(self.url, autocommit=autocommit) as conn:
            self._prepare(conn)
            yield conn

    def _prepare(self, conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema)))
        # pgvector's register_vector looks up four types per connection (a round trip each,
        # about 2 % of a pipeline run's CPU): the vector type, the only one used, is looked up
        # once per process and database.
        info = _vector_types.get(self.url) or TypeInfo.fetch(conn, "vector")
        if info is None:
            raise RuntimeError("the pgvector extension is not installed in this database")
        _vector_types[self.url] = info
        register_vector_info(conn, info)
        if not conn.autocommit:
            conn.commit()

    def migrate(self) -> None:
        """Apply missing migrations; safe to call from many processes at once."""
        key = (self.url, self.schema, self.shards)
        if key in _migrated:
            return
        with psycopg.connect(self.url) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            schema = sql.Identifier(self.schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(schema))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, statements in migrations():
                if version not in applied:
                    conn.execute(statements)  # type: ignore[arg-type]  # trusted package file
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            if self.shards is not None:
                check_shard_count(conn, self.shards)
        _migrated.add(key)
