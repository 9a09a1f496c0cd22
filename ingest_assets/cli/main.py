"""The `ingest` group: the commands of the other modules, and one line per failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import psycopg
import sqlalchemy.exc

from ingest_assets.cli.backfill import backfill
from ingest_assets.cli.common import ConfigurationError, console, first_line
from ingest_assets.cli.dev import dev
from ingest_assets.cli.models import model
from ingest_assets.cli.run import run
from ingest_assets.cli.search import search_command
from ingest_assets.cli.sources import source
from ingest_assets.cli.status import status
from ingest_assets.database import exit_cleanly_on_sigterm
from ingest_assets.embedders import EmbeddingError
from ingest_assets.store.index_settings import ShardCountMismatch


class IngestGroup(click.Group):
    """Turns infrastructure failures into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (psycopg.Error, sqlalchemy.exc.SQLAlchemyError) as err:
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


main.add_command(run)
main.add_command(search_command)
main.add_command(status)
main.add_command(source)
main.add_command(model)
main.add_command(backfill)
main.add_command(dev)
