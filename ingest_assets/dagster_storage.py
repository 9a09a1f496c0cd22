"""Dagster's PostgreSQL storage, with each process keeping its connections (dagster.yaml names
it as the instance's `storage`).

dagster_postgres opens a new connection for every query outside the webserver (SQLAlchemy's
NullPool). Under `ingest dev`, a sensor's fan-out over 20,000 documents opened ~6,700 sessions
in two minutes. Each one was a forked backend with a cold catalog cache, on the cores the
pipeline needs. Here every process keeps a small pool, as the webserver does
(`optimize_for_webserver`, without its statement timeout), each connection tested before use
so that a database restart costs a reconnect, not a failed query. Dagster also checks that the
dynamic-partitions table exists before every partition lookup (two catalog queries); that
answer is kept once it is yes.
"""

from __future__ import annotations

from typing import Any

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.pool import NullPool

POOL_RECYCLE_S = 3600
# Connections a process may open beyond its pooled one when its threads query at once (the
# daemon's); they are closed after use.
MAX_OVERFLOW = 10


class PooledPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose run, event log and schedule storages pool connections."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, **kwargs: Any):
        super().__init__(postgres_url, should_autocreate_tables, **kwargs)
        for storage in (self.run_storage, self.event_log_storage, self.schedule_storage):
            keep_connections(storage)
        _remember_tables(self.event_log_storage)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledPostgresStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )


def keep_connections(storage: Any) -> None:
    """Pool a dagster_postgres storage's connections: tested before use (SQLAlchemy's
    pool_pre_ping; Dagster builds the engine, so it is set on the pool) and closed when the
    instance disposes of the storage (it disposes of each storage, not of this class). A
    storage that pools already, or is not dagster_postgres's, is left as it is."""
    engine = getattr(storage, "_engine", None)
    if engine is None or not isinstance(engine.pool, NullPool):
        return
    storage.optimize_for_webserver(
        statement_timeout=0, pool_recycle=POOL_RECYCLE_S, max_overflow=MAX_OVERFLOW
    )
    pool = storage._engine.pool  # the pooled engine optimize_for_webserver just built
    if hasattr(pool, "_pre_ping"):
        pool._pre_ping = True
    dispose = storage.dispose

    def dispose_and_close() -> None:
        dispose()
        storage._engine.dispose()  # the current one: the webserver may have rebuilt it

    storage.dispose = dispose_and_close


def _remember_tables(storage: Any) -> None:
    """Answer `has_table` from memory once a table is known to exist (tables are not dropped
    under a running instance; a missing one is asked again)."""
    existing: set[str] = set()
    ask = storage.has_table

    def has_table(name: str) -> bool:
        if name not in existing and ask(name):
            existing.add(name)
        return name in existing

    storage.has_table = has_table
