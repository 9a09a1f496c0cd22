"""Shared fixtures: a real PostgreSQL (embedded, or INGEST_TEST_DATABASE_URL), one schema per
test, settings that use the deterministic hashing embedder, and a throwaway Dagster instance."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from ingest_assets.database import (
    Database,
    embedded_server_url,
    ensure_database,
    url_for_database,
)
from ingest_assets.embedders import EmbeddingSettings
from ingest_assets.runs.local import run_source
from ingest_assets.runs.plan import register
from ingest_assets.runs.report import RunSummary
from ingest_assets.settings import IngestSettings
from ingest_assets.sources.registry import SourceRecord
from ingest_assets.testing.environment import isolated_environment

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("INGEST_TEST_DATABASE_URL")
    if url:
        return url
    return embedded_server_url(tmp_path_factory.mktemp("pg") / "data")


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield Database(pg_url, schema)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def cli_environment(db: Database, home: Path, **settings: str) -> Iterator[dict[str, str]]:
    """The environment of a child `ingest`: this test's schema, no stage retries, and Dagster's
    storage in a database of its own (no other test's runs), dropped afterwards."""
    name = f"dagster_{uuid.uuid4().hex[:12]}"
    ensure_database(db.url, name)
    dagster_url = url_for_database(db.url, name)
    yield isolated_environment(
        INGEST_HOME=str(home),
        INGEST_DATABASE_URL=db.url,
        INGEST_DB_SCHEMA=db.schema,
        DAGSTER_PG_URL=dagster_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        INGEST_STAGE_RETRIES="0",
        **settings,
    )
    with psycopg.connect(url_for_database(db.url, "postgres"), autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        conn.execute(drop)


@pytest.fixture
def settings(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IngestSettings:
    monkeypatch.setenv("INGEST_DATABASE_URL", db.url)
    return IngestSettings(
        home=tmp_path / "home",
        database_url=db.url,
        db_schema=db.schema,
        embedding=EmbeddingSettings(provider="hashing", model="hashing-384"),
        shards=4,
        chunk_tokens=64,
        stage_retry_delay_s=0.2,
    )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


class Ingest:
    """Runs the real ingest job over a source, as `ingest run` does."""

    def __init__(self, settings: IngestSettings, db: Database, instance: dg.DagsterInstance):
        self.settings = settings
        self.db = db
        self.instance = instance

    def __call__(
        self,
        folder: Path | SourceRecord,
        name: str = "docs",
        settings: IngestSettings | None = None,
    ) -> RunSummary:
        """Ingest a folder (as source `name`) or any declared source."""
        settings = settings or self.settings
        record = (
            folder
            if isinstance(folder, SourceRecord)
            else SourceRecord(name, "folder", str(folder))
        )
        register(settings, self.db, self.instance, record)
        return run_source(settings, self.db, self.instance, record.name)


@pytest.fixture
def ingest(settings: IngestSettings, db: Database, instance: dg.DagsterInstance) -> Ingest:
    return Ingest(settings, db, instance)
