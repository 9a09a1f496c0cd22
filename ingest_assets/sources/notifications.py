"""Change signals held between sensor ticks: a LISTEN connection for each table source with a
`notify_channel`, and a filesystem watcher (inotify, through watchfiles) for each folder.

A sensor evaluation is short-lived, but the code location's process is not: the connection or
watcher of each source stays open there and counts what arrives until the next tick drains it.
So a NOTIFY or a file saved is seen at the notify sensor's next tick (seconds), and nothing
between ticks is lost while the signal lives. Opening a connection or a watcher, the first
time or after it was lost, counts as a wake-up, since signals may have been missed; the change
sensor's polling stays the fallback for everything else (a channel nobody notifies, a folder
on a network mount that sends no events).
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import watchfiles
from psycopg import sql

from ingest_assets.sources.base import SourceReadError
from ingest_assets.sources.registry import SourceRecord, open_source
from ingest_assets.sources.table import TableSource

_listeners: dict[str, tuple[tuple[str, str], psycopg.Connection]] = {}
_lock = threading.Lock()


def drain(record: SourceRecord, channel: str) -> int:
    """How many notifications arrived on the source's channel since the last call. The first
    call starts listening and a reconnect listens again; both return 1, as a NOTIFY may have
    come while nobody listened."""
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
        elif held is not None:
            held[1].close()
        _listeners[record.name] = (key, _listen(key[0], channel))
        return 1


class _FolderWatcher:
    """A thread that counts filesystem events under a folder (recursively)."""

    DEBOUNCE_MS = 200  # events within this window arrive as one batch

    def __init__(self, path: str):
        self.path = path
        self._events = 0
        self._counted = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch {path}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            for changes in watchfiles.watch(
                self.path,
                stop_event=self._stop,
                debounce=self.DEBOUNCE_MS,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                with self._counted:
                    self._events += len(changes)
        except Exception:  # the folder vanished, too many inotify watches: the thread ends
            return

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def drain(self) -> int:
        with self._counted:
            events, self._events = self._events, 0
        return events

    def stop(self) -> None:
        self._stop.set()


_watchers: dict[str, _FolderWatcher] = {}


def drain_folder(record: SourceRecord) -> int:
    """How many filesystem events arrived under the source's folder since the last call. The
    first call starts watching and a watcher that stopped is restarted; both return 1, as a
    file may have been saved while nothing watched (a file saved between the source's first
    ingestion and the notify sensor's first look waited for the change sensor's poll). A
    folder that does not exist is a SourceReadError."""
    if not Path(record.location).is_dir():
        raise SourceReadError(f"{record.location}: not a directory")
    with _lock:
        held = _watchers.get(record.name)
        if held is not None and held.path == record.location and held.alive:
            return held.drain()
        if held is not None:
            held.stop()
        _watchers[record.name] = _FolderWatcher(record.location)
        return 1


def stop_all() -> None:
    with _lock:
        for _, conn in _listeners.values():
            conn.close()
        _listeners.clear()
        for watcher in _watchers.values():
            watcher.stop()
        _watchers.clear()


def _listen(dsn: str, channel: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    except psycopg.Error as err:
        raise SourceReadError(f"cannot listen on {channel!r}: {err}") from None
    return conn
