"""Settings recorded with the index at first use, which a later process may not change."""

from __future__ import annotations

import psycopg


class ShardCountMismatch(ValueError):
    """INGEST_SHARDS differs from the shard count the index was built with."""


def check_shard_count(conn: psycopg.Connection, shards: int) -> None:
    """Record the shard count at first use; refuse another one afterwards."""
    conn.execute(
        "INSERT INTO index_settings (name, value) VALUES ('shards', %s) ON CONFLICT DO NOTHING",
        (str(shards),),
    )
    row = conn.execute("SELECT value FROM index_settings WHERE name = 'shards'").fetchone()
    recorded = int(row[0])  # type: ignore[index]
    if recorded != shards:
        raise ShardCountMismatch(
            f"INGEST_SHARDS={shards}, but this index was built with {recorded} shards (a "
            f"document's shard is a hash of its id mod the count, so changing it would move "
            f"every document): set INGEST_SHARDS={recorded}, or build a new index in another "
            "INGEST_DB_SCHEMA or database"
        )
