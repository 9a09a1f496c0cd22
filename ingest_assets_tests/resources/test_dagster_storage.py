"""The instance storage of the project's dagster.yaml, against a real PostgreSQL: a process
keeps its connections, recovers from a dropped one, and closes them when disposed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from ingest_assets.dagster_storage import PooledPostgresStorage
from ingest_assets.database.connection import url_for_database

OPERATIONS = 60


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    """A database of its own, so that its session counts are this test's alone."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def project_instance(
    pg_url: str, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    config = (resources.files("ingest_assets") / "data" / "dagster.yaml").read_text()
    (tmp_path / "dagster.yaml").write_text(config)
    url = url_for_database(pg_url, database)
    monkeypatch.setenv("DAGSTER_PG_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    yield instance
    instance.dispose()


def sessions(pg_url: str, database: str) -> tuple[int, int]:
    """(sessions opened so far, sessions open now) on `database`."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_stat_clear_snapshot()")
        opened = admin.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
        now = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert opened is not None and now is not None
    return int(opened[0]), int(now[0])


def storage_operations(instance: dg.DagsterInstance) -> None:
    """What a run does over and over: partition lookups, event reads, run reads."""
    instance.add_dynamic_partitions("sources", ["docs"])
    for _ in range(OPERATIONS):
        assert instance.has_dynamic_partition("sources", "docs")
        instance.get_run_records(limit=1)
        instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))


def test_a_process_keeps_its_connections_instead_of_one_per_query(
    project_instance: dg.DagsterInstance, pg_url: str, database: str
):
    assert isinstance(project_instance.get_ref().storage, PooledPostgresStorage)
    storage_operations(project_instance)  # the pools fill
    before, _ = sessions(pg_url, database)
    storage_operations(project_instance)
    after, open_now = sessions(pg_url, database)

    assert after - before <= 3  # NullPool: a session per query, ~3 * OPERATIONS
    assert 1 <= open_now <= 3


def test_a_dropped_connection_is_replaced_not_failed_on(
    project_instance: dg.DagsterInstance, pg_url: str, database: str
):
    storage_operations(project_instance)
    with psycopg.connect(pg_url, autocommit=True) as admin:  # as a database restart would
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
    assert project_instance.has_dynamic_partition("sources", "docs")
    assert project_instance.get_run_records(limit=1) == []


def test_disposing_of_the_instance_closes_its_connections(
    project_instance: dg.DagsterInstance, pg_url: str, database: str
):
    storage_operations(project_instance)
    assert sessions(pg_url, database)[1] >= 1
    project_instance.dispose()
    assert sessions(pg_url, database)[1] == 0
