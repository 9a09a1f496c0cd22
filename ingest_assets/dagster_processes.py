"""Dagster's own processes (`dagster dev`, the daemon, the code server) with two start-up
delays taken out. The only module that imports private Dagster modules; here is why:

- The backfill daemon sleeps `dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS`
  (30 s, no setting) between iterations, so a backfill launched from the UI waited up to 30 s
  before its first run was even queued. Here it is BACKFILL_INTERVAL_S (an idle iteration is
  one query of the backfill table). The asset daemon, which shares the constant, keeps its 30 s
  through dagster.yaml (`auto_materialize.minimum_interval_seconds`).
- The code server starts every run in a *spawned* Python (`DagsterApiServer._mp_ctx`), which
  imports Dagster and this project again: 2-4 s on 2 cores before a run does anything, paid by
  every run of a sensor's or a backfill's fan-out. Here runs are forked from a forkserver that
  has imported them once (PRELOADED), started with the code server rather than by the first
  run; the child still reads its run from the instance and loads the job from the code
  location as before.

    python -m ingest_assets.dagster_processes dev ...     # as `dagster dev ...`
    python -m ingest_assets.dagster_processes daemon ...  # as `dagster-daemon ...`
    python -m ingest_assets.dagster_processes dagster ... # as `dagster ...` (code servers)

`dagster dev` starts its daemon and code servers as `python -m dagster._daemon` and `python -m
dagster`; under this module those commands come back here.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sys
from collections.abc import Callable, Sequence
from typing import Any

BACKFILL_INTERVAL_S = 2
# Imported once in the forkserver rather than by every run (multiprocessing skips a name that
# fails to import, silently: a test imports each).
PRELOADED = ["ingest_assets.run_worker_imports", "dagster._grpc.impl"]
_KINDS = {"dagster": "dagster", "dagster._daemon": "daemon"}


def _route_children_here() -> None:
    """Make `dagster dev` and the code-server proxy start their children through this module."""
    import dagster._cli.dev as dev
    import dagster._grpc.server as server

    def rerouted(launch: Callable[..., Any]) -> Callable[..., Any]:
        def open_subprocess(command: Sequence[str], **kwargs: Any) -> Any:
            command = list(command)
            if command[1:2] == ["-m"] and command[2] in _KINDS:
                command[1:3] = ["-m", __spec__.name, _KINDS[command[2]]]  # type: ignore[name-defined]
            return launch(command, **kwargs)

        return open_subprocess

    dev.open_ipc_subprocess = rerouted(dev.open_ipc_subprocess)
    server.open_ipc_subprocess = rerouted(server.open_ipc_subprocess)


def _fork_runs_from_a_warm_process() -> None:
    from dagster._grpc.server import DagsterApiServer

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)
    init = DagsterApiServer.__init__

    def __init__(self: DagsterApiServer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._mp_ctx = context  # type: ignore[assignment]  # a forkserver, not spawn
        # Started now, while nothing waits, not by the first run: its start and imports
        # delayed a new source's first run by ~3 s on 2 cores.
        multiprocessing.forkserver.ensure_running()

    DagsterApiServer.__init__ = __init__  # type: ignore[method-assign]


def _shorten_backfill_interval() -> None:
    import dagster._daemon.controller as controller

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = BACKFILL_INTERVAL_S


def main(argv: list[str]) -> None:
    kind, args = argv[0], argv[1:]
    if kind == "daemon":
        from dagster._daemon.cli import main as daemon_main

        _shorten_backfill_interval()
        sys.argv = ["dagster-daemon", *args]
        daemon_main()
        return
    from dagster._cli import main as dagster_main

    _route_children_here()
    _fork_runs_from_a_warm_process()
    sys.argv = ["dagster", *(["dev"] if kind == "dev" else []), *args]
    dagster_main()


if __name__ == "__main__":
    main(sys.argv[1:])
