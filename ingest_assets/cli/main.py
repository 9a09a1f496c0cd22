"""The `ingest` group: the commands of the other modules, and one line per failure.

A command's module is imported only when that command runs (or `ingest --help` lists it):
`ingest search` must not pay for Dagster, SQLAlchemy or torch, which other commands import."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from pathlib import Path

import click
import psycopg

from ingest_assets.cli.common import ConfigurationError, console, first_line
from ingest_assets.database import exit_cleanly_on_sigterm
from ingest_assets.embedders import EmbeddingError
from ingest_assets.store.index_settings import ShardCountMismatch

# name: (module, attribute) of each command
COMMANDS = {
    "backfill": ("ingest_assets.cli.backfill", "backfill"),
    "dev": ("ingest_assets.cli.dev", "dev"),
    "eval": ("ingest_assets.cli.eval", "eval_command"),
    "model": ("ingest_assets.cli.models", "model"),
    "run": ("ingest_assets.cli.run", "run"),
    "search": ("ingest_assets.cli.search", "search_command"),
    "source": ("ingest_assets.cli.sources", "source"),
    "status": ("ingest_assets.cli.status", "status"),
}


def _database_errors() -> tuple[type[BaseException], ...]:
    """psycopg's base error, and SQLAlchemy's if a command has imported SQLAlchemy (through
    Dagster): one that has not cannot raise it, and importing it here would cost every command."""
    exc = sys.modules.get("sqlalchemy.exc")
    return (psycopg.Error, exc.SQLAlchemyError) if exc is not None else (psycopg.Error,)


class IngestGroup(click.Group):
    """Loads commands lazily; turns infrastructure failures into one clear line instead of a
    traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except _database_errors() as err:
            raise click.ClickException(
                f"database error: {first_line(err)}. Work already committed is kept; "
                "run the command again to finish."
            ) from err
        except EmbeddingError as err:
            raise click.ClickException(f"embedding provider error: {err}") from err
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)
        except ShardCountMismatch as err:
            raise ConfigurationError(str(err)) from None
        except OSError as err:
            if err.filename is None:
                raise
            home = Path(os.environ.get("INGEST_HOME", ".ingest")).expanduser().absolute()
            hint = (
                " (INGEST_HOME holds the embedded database and Dagster's home: point it at a "
                "folder this user can write)"
                if str(Path(err.filename).absolute()).startswith(str(home))
                else ""
            )
            raise click.ClickException(f"{err.filename}: {err.strerror}{hint}") from None


@click.group(cls=IngestGroup)
def main() -> None:
    """Ingest documents into PostgreSQL/pgvector with Dagster, and search them."""
    exit_cleanly_on_sigterm()


def entry() -> None:
    """The `ingest` process: run the command, then leave without tearing the interpreter
    down. After a command that imported Dagster, freeing every module's objects one by one
    took ~0.7 s on 2 cores, after the command had printed its result. What an ordinary exit
    does first still happens: threads still running are waited for, and the exit handlers run
    (logging's, multiprocessing's, the embedded PostgreSQL's release)."""
    code: int | str | None = 0
    try:
        main()  # standalone mode: ends with SystemExit
    except SystemExit as done:
        code = done.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
