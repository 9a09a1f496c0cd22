"""The Dagster resource over the pipeline's PostgreSQL (ingest_assets.database)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ingest_assets.database import Database, embedded_server_url


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
