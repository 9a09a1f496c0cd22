"""LISTEN connections for table sources with a `notify_channel`, held between sensor ticks.

A sensor evaluation is short-lived, but the code location's process is not: one connection per
source stays open there with LISTEN, and PostgreSQL queues each NOTIFY on it until the next
tick drains them. So a NOTIFY is seen at the notify sensor's next tick (seconds), and nothing
sent between ticks is lost while the connection lives. A lost connection is reopened and
counts as a wake-up, since notifications may have been missed; the change sensor's polling
stays the fallback for everything else (a process restart, a channel nobody notifies).
"""

from __future__ import annotations

import threading

import psycopg
from psycopg import sql

from ingest_assets.sources.base import SourceReadError
from ingest_assets.sources.registry import SourceRecord, open_source
from ingest_assets.sources.table import TableSource

_listeners: dict[str, tuple[tuple[str, str], psycopg.Connection]] = {}
_lock = threading.Lock()


def drain(record: SourceRecord, channel: str) -> int:
    """How many notifications arrived on the source's channel since the last call. The first
    call starts listening and returns 0; a reconnect returns 1."""
    source = open_source(record)
    assert isinstance(source, TableSource)
    key = (source.dsn(), channel)
    with _lock:
        held = _listeners.get(record.name)
        if held is not None and held[0] == key and not held[1].closed:
            try:
                return sum(1 for _ in held[1].notifies(timeout=0))
            except psycopg.Error:
                held[1].close()
                woken = 1
        else:
            woken = 0 if held is None else 1
            if held is not None:
                held[1].close()
        _listeners[record.name] = (key, _listen(key[0], channel))
        return woken


def stop_all() -> None:
    with _lock:
        for _, conn in _listeners.values():
            conn.close()
        _listeners.clear()


def _listen(dsn: str, channel: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    except psycopg.Error as err:
        raise SourceReadError(f"cannot listen on {channel!r}: {err}") from None
    return conn
