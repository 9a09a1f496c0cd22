"""`ingest dev`: the Dagster UI and daemon, supervised as one process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import psycopg
import sqlalchemy.exc
import yaml

from ingest_assets.cli.common import cli_settings, console
from ingest_assets.local_stack import cancel_orphaned_runs, database_url, open_instance
from ingest_assets.webserver import record_dev_url

WORKSPACE_MODULE = {
    "module_name": "ingest_assets.definitions",
    "attribute": "defs",
    "location_name": "ingest_assets",
}


@click.command()
@click.option("--port", default=3000, show_default=True)
@click.option("--verbose", is_flag=True, help="Show the daemon's and webserver's INFO lines.")
def dev(port: int, verbose: bool) -> None:
    """Run the Dagster UI and daemon on the project's instance (Ctrl-C stops both)."""
    settings = cli_settings()
    db_url = database_url(settings)  # the embedded server stays up while this command runs
    open_instance(settings, db_url).dispose()
    # The same code location name wherever it is started from, so UI links stay the same.
    workspace = Path(os.environ["DAGSTER_HOME"]) / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": WORKSPACE_MODULE}]}))
    target = ["-w", str(workspace)]
    command = [sys.executable, "-m", "ingest_assets.dagster_processes", "dev", *target]
    # The daemon says at INFO every few seconds that each sensor had nothing to do; the UI
    # has all of it, the console only what needs attention unless asked.
    command += ["-h", "127.0.0.1", "-p", str(port), "--log-level", "info" if verbose else "warning"]
    console.print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}; UI on http://127.0.0.1:{port}")
    # Started as a background job, this process and its children inherit an ignored SIGINT;
    # Ctrl-C (SIGINT to the process group) is how `ingest dev` stops, so take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A session of its own: everything Dagster starts (code servers, the processes of the
    # runs) is one process group that this command stops as a whole, however it is stopped.
    dagster = subprocess.Popen(command, preexec_fn=_default_sigint, start_new_session=True)
    record_dev_url(Path(os.environ["DAGSTER_HOME"]), f"http://127.0.0.1:{port}")
    try:
        code = dagster.wait()
    except (KeyboardInterrupt, SystemExit) as stop:
        _stop(dagster)
        try:
            stopped = cancel_orphaned_runs(open_instance(settings, db_url))
        except (psycopg.Error, sqlalchemy.exc.SQLAlchemyError) as err:
            console.print(f"ingest dev: the runs that were going stay marked started: {err}")
        else:
            if stopped:
                console.print(f"ingest dev: {stopped} run(s) stopped and marked canceled")
        if isinstance(stop, SystemExit):
            raise
        console.print("ingest dev: stopped")  # Ctrl-C is the normal way out: exit 0
        return
    finally:
        record_dev_url(Path(os.environ["DAGSTER_HOME"]), None)
        _signal_group(dagster, signal.SIGKILL)  # whatever dagster dev left behind
    if code != 0:
        sys.exit(code)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask dagster dev to stop its webserver and daemon (SIGINT, as Ctrl-C would), then end
    what is left in its process group (code servers, the runs' processes, Dagster's helper
    scripts) with SIGTERM, then SIGKILL: SIGINT to those prints a KeyboardInterrupt traceback
    each, and the runs are marked canceled afterwards anyway."""
    process.send_signal(signal.SIGINT)
    # Its daemon may take longer to wind down than is worth waiting for.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        _signal_group(process, sig)
        deadline = time.monotonic() + grace
        # poll() reaps dagster dev itself: a zombie leader would keep the group "alive".
        while process.poll() is None or _group_alive(process):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        else:
            return


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
