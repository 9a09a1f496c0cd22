"""The database the settings name: INGEST_DATABASE_URL, or the embedded server under the home.
Dagster-free, so that a command that only reads the index (`ingest search`) starts light."""

from __future__ import annotations

from ingest_assets.database.connection import Database
from ingest_assets.database.embedded import embedded_server_url
from ingest_assets.settings import IngestSettings


def database_url(settings: IngestSettings) -> str:
    """The configured PostgreSQL, or the embedded one (started or joined) when none is."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded_server_url(settings.embedded_pgdata)


def open_database(settings: IngestSettings) -> Database:
    return Database(database_url(settings), settings.db_schema, settings.shards)
