"""`ingest model`: the models with vectors, and the gated switch between them: plan, activate,
roll back (activate the previous one), drop."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ingest_assets.cli.common import cli_settings, console, first_line, out
from ingest_assets.local_stack import database_url, open_database, prepare_dagster_environment
from ingest_assets.pipeline.models import ActivationRefused, activate_model, plan_model
from ingest_assets.settings import IngestSettings
from ingest_assets.store.serving import (
    Activation,
    activations,
    drop,
    models_with_coverage,
    serving_model,
)


@click.group()
def model() -> None:
    """Embedding models: which one serves, which one is built, and the switch."""


@model.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def model_list(as_json: bool) -> None:
    """Models with vectors, which one serves, which one is being built, and the switches."""
    settings = cli_settings()
    with open_database(settings).connect() as conn:
        rows = models_with_coverage(conn)
        current = serving_model(conn)
        history = activations(conn, limit=10)
    serving = current.model if current else None
    building = settings.embedding.model
    if as_json:
        listed = [
            {**row, "serving": row["model"] == serving, "building": row["model"] == building,
             "previous": bool(current and row["model"] == current.previous)}
            for row in rows
        ]  # fmt: skip
        out.print_json(json.dumps({"models": listed, "activations": history}, default=str))
        return
    table = Table("model", "dimension", "vectors", "live chunks covered", "role")
    for row in rows:
        roles = [
            role
            for role, name in (
                ("serving", serving),
                ("previous", current.previous if current else None),
                ("building", building),
            )
            if name == row["model"]
        ]
        covered = f"{row['chunks'] - row['missing']}/{row['chunks']}"
        table.add_row(
            row["model"], str(row["dimension"]), str(row["vectors"]), covered, ", ".join(roles)
        )
    out.print(table)
    for event in history[:5]:
        forced = " (forced)" if event["forced"] else ""
        console.print(
            f"{event['activated_at']:%Y-%m-%d %H:%M:%S}: {event['model']} serves{forced}"
            + (f", was {event['previous']}" if event["previous"] else "")
        )


@model.command(name="plan")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def model_plan(as_json: bool) -> None:
    """What the model being built (INGEST_EMBEDDING_MODEL) still needs, per source: distinct
    texts and tokens to embed, texts reused, and the cost when a price is set
    (INGEST_EMBEDDING_PRICE_PER_MILLION_TOKENS)."""
    settings = cli_settings()
    with open_database(settings).connect() as conn:
        plan = plan_model(conn, settings.embedding)
    if as_json:
        out.print_json(json.dumps(plan.as_dict()))
        return
    table = Table(
        "source", "live chunks", "texts to embed", "tokens", "texts reused",
        title=f"{plan.model}: what its vectors still need (serving: {plan.serving or 'none'})",
    )  # fmt: skip
    for row in plan.sources:
        table.add_row(row.source, str(row.chunks), str(row.texts), str(row.tokens), str(row.reused))
    table.add_row("[b]all sources[/b]", "", str(plan.texts), str(plan.tokens), "")
    out.print(table)
    if plan.cost is not None:
        out.print(f"cost: {plan.cost:.6g} at {plan.price_per_million_tokens:g} per million tokens")
    console.print(
        "tokens as the chunking tokenizer counts them; identical texts are embedded once "
        "(the total counts each once over all sources)"
    )


@model.command(name="activate")
@click.argument("name")
@click.option(
    "--force",
    is_flag=True,
    help="Serve NAME although it is incomplete or misses a gate (recorded).",
)
def model_activate(name: str, force: bool) -> None:
    """Make NAME the serving model, in one transaction: only when every live chunk has its
    vector and every retrieval gate passes. Activating the previous model is the rollback."""
    settings = cli_settings()
    try:
        done = activate_model(
            open_database(settings), name, settings.embedding, settings.shards, force=force
        )
    except ActivationRefused as err:
        raise click.ClickException(str(err)) from None
    _record_in_dagster(settings, done)
    covered = f"{done.chunks - done.chunks_without_vector}/{done.chunks}"
    line = f"{done.model} serves{' (forced)' if done.forced else ''}: {covered} chunks covered"
    if done.previous:
        line += f"; {done.previous} is kept current for a rollback until `ingest model drop`"
    console.print(line)


@model.command(name="drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def model_drop(name: str, yes: bool) -> None:
    """Drop model NAME's vectors (not the serving model's: activate another one first)."""
    settings = cli_settings()
    if not yes:
        click.confirm(f"Drop every vector of model {name!r}?", abort=True)
    with open_database(settings).connect() as conn:
        try:
            dropped = drop(conn, name)
        except ActivationRefused as err:
            raise click.ClickException(str(err)) from None
    if not dropped:
        raise click.ClickException(f"no vectors stored for model {name!r} (`ingest model list`)")
    console.print(f"dropped model {name}")


def _record_in_dagster(settings: IngestSettings, done: Activation) -> None:
    """The switch as a materialisation of index_serving in the project's instance; the switch
    itself is already made, so an unreachable instance only warns."""
    import dagster as dg
    import sqlalchemy.exc

    from ingest_assets.defs.serving import record_activation

    try:
        prepare_dagster_environment(settings, database_url(settings))
        with dg.DagsterInstance.get() as instance:
            record_activation(instance, done, by="ingest model activate")
    except (sqlalchemy.exc.SQLAlchemyError, dg.DagsterError) as err:
        console.print(f"[yellow]not recorded in Dagster[/yellow]: {first_line(err)}")
