"""The source registry table."""

from __future__ import annotations

import psycopg

from ingest_assets.sources.registry import SourceRecord


def register_source(conn: psycopg.Connection, record: SourceRecord) -> None:
    conn.execute(
        "INSERT INTO sources (name, kind, location) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, location = EXCLUDED.location, "
        "updated_at = now() WHERE (sources.kind, sources.location) "
        "IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.location)",
        (record.name, record.kind, record.location),
    )


def get_source(conn: psycopg.Connection, name: str) -> SourceRecord | None:
    row = conn.execute(
        "SELECT name, kind, location FROM sources WHERE name = %s", (name,)
    ).fetchone()
    return SourceRecord(*row) if row else None


def list_sources(conn: psycopg.Connection) -> list[SourceRecord]:
    rows = conn.execute("SELECT name, kind, location FROM sources ORDER BY name").fetchall()
    return [SourceRecord(*row) for row in rows]
