"""`ingest model`: the embedding models with stored vectors."""

from __future__ import annotations

import click
from rich.table import Table

from ingest_assets.cli.common import cli_settings, console, out
from ingest_assets.local_stack import open_database
from ingest_assets.store.vectors import drop_model, list_models


@click.group()
def model() -> None:
    """Embedding models with stored vectors."""


@model.command(name="list")
def model_list() -> None:
    """Models with a vector table, their dimension and vector count."""
    settings = cli_settings()
    with open_database(settings).connect() as conn:
        rows = list_models(conn)
    table = Table("model", "dimension", "vectors", "table", "active")
    for name, dimension, table_name, count in rows:
        active = "yes" if name == settings.embedding.model else ""
        table.add_row(name, str(dimension), str(count), table_name, active)
    out.print(table)


@model.command(name="drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def model_drop(name: str, yes: bool) -> None:
    """Drop model NAME's vectors (the active model's are kept unless you switch first)."""
    settings = cli_settings()
    if name == settings.embedding.model:
        raise click.ClickException(
            f"{name!r} is the active model; switch models before dropping it"
        )
    if not yes:
        click.confirm(f"Drop every vector of model {name!r}?", abort=True)
    with open_database(settings).connect() as conn:
        if not drop_model(conn, name):
            raise click.ClickException(f"no vectors stored for model {name!r}")
    console.print(f"dropped model {name}")
