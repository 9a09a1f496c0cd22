"""The embedded PostgreSQL's lifecycle across processes, and idempotent migrations."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from ingest_assets.database import Database
from ingest_assets.sql import migrations

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ingest_assets.database import embedded_server_url, exit_cleanly_on_sigterm
    exit_cleanly_on_sigterm()  # as the `ingest` command does
    print(embedded_server_url(Path(sys.argv[1])), flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def _hold(pgdata: Path, seconds: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(pgdata), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _alive(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_embedded_server_is_shared_and_stops_with_its_last_holder(tmp_path):
    pgdata = tmp_path / "pg"
    long_holder, url = _hold(pgdata, 30)
    try:
        short_holder, same_url = _hold(pgdata, 0)
        assert short_holder.wait(timeout=60) == 0
        short_holder.stdout.close()
        assert same_url == url
        assert _alive(url), "a second process exiting must not stop the first one's server"
        with psycopg.connect(url) as conn:
            socket_only = conn.execute("SHOW listen_addresses").fetchone()
        assert socket_only == ("",)  # unix socket only, no TCP
    finally:
        long_holder.terminate()
        long_holder.wait(timeout=60)
        long_holder.stdout.close()
    deadline = time.monotonic() + 30
    while _alive(url) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(url)


def test_embedded_server_survives_a_holder_killed_with_sigkill(tmp_path):
    pgdata = tmp_path / "pg"
    killed, url = _hold(pgdata, 30)
    killed.kill()
    killed.wait(timeout=30)
    killed.stdout.close()
    # The orphaned server keeps running; the next holder joins it and, being the last
    # holder it knows of, stops it on exit.
    joined, same_url = _hold(pgdata, 0)
    assert joined.wait(timeout=60) == 0
    joined.stdout.close()
    assert same_url == url
    deadline = time.monotonic() + 30
    while _alive(url) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(url)


def test_migrations_are_idempotent_and_safe_concurrently(pg_url):
    schema = "test_migrations_concurrent"
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            Database(pg_url, schema).migrate()
        except BaseException as err:  # collected and re-raised in the test thread
            errors.append(err)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        # Another process (nothing remembered) finds every migration applied.
        again = "from ingest_assets.database import Database; import sys; "
        again += "Database(sys.argv[1], sys.argv[2]).migrate()"
        subprocess.run([sys.executable, "-c", again, pg_url, schema], check=True, timeout=120)
        with Database(pg_url, schema).connect() as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert sorted(versions) == [version for version, _ in migrations()]  # each once
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize("schema", ['we"ird; DROP TABLE x', "Mixed Case"])
def test_schema_names_are_quoted_identifiers(pg_url, schema):
    try:
        with Database(pg_url, schema).connect() as conn:
            assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(schema)
                )
            )
