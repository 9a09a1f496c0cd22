"""The pipeline's PostgreSQL: the embedded server, connections and migrations. No Dagster here;
`defs/resources/postgres.py` is the Dagster resource over it."""

from ingest_assets.database.configured import database_url, open_database
from ingest_assets.database.connection import Database, ensure_database, url_for_database
from ingest_assets.database.embedded import embedded_server_url, exit_cleanly_on_sigterm

__all__ = [
    "Database",
    "database_url",
    "embedded_server_url",
    "ensure_database",
    "exit_cleanly_on_sigterm",
    "open_database",
    "url_for_database",
]
