"""What `ingest run` does before any run: declare the source, and cut it into the fan-out
plan's shard ranges."""

from __future__ import annotations

import dagster as dg
import psycopg

from ingest_assets import fanout
from ingest_assets.database import Database
from ingest_assets.defs.partitions import SOURCES_PARTITIONS_NAME
from ingest_assets.fanout import ShardRange
from ingest_assets.settings import IngestSettings
from ingest_assets.sources.registry import SourceRecord, upsert_registry
from ingest_assets.store.sources import get_source, register_source


def register(
    settings: IngestSettings, db: Database, instance: dg.DagsterInstance, record: SourceRecord
) -> None:
    """Declare the source in the registry file and the database, and add its partition key
    so the UI lists its shards at once (the sources sensor would, within a tick)."""
    upsert_registry(settings.sources_path, record)
    with db.connect() as conn:
        register_source(conn, record)
        conn.commit()
    if not instance.has_dynamic_partition(SOURCES_PARTITIONS_NAME, record.name):
        instance.add_dynamic_partitions(SOURCES_PARTITIONS_NAME, [record.name])


def plan_ranges(
    db: Database, source: str, shards: int, parallel: int, ranges: int | None
) -> list[ShardRange]:
    """The fan-out plan's ranges for this run: a first ingestion of a large source is split;
    a source already indexed (usually little to do) is one run. `ranges` forces a split."""
    if ranges is not None:
        return fanout.shard_ranges(shards, ranges, ramp=fanout.RAMP)
    with db.connect() as conn:
        if _has_documents(conn, source):
            return [(0, shards - 1)]
        record = get_source(conn, source)
    if record is None:
        return [(0, shards - 1)]
    return fanout.for_new_source(record, shards, parallel)


def _has_documents(conn: psycopg.Connection, source: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM documents WHERE source = %s)", (source,))
    return bool(row.fetchone()[0])  # type: ignore[index]
