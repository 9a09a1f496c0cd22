"""`ingest backfill`: a Dagster backfill of a source's shards."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ingest_assets.backfill import (
    STAGES,
    launch_backfill,
    overlapping_backfill,
    stages_from,
    unfinished_partitions,
)
from ingest_assets.cli.common import cli_settings, console, out
from ingest_assets.defs.partitions import SOURCES_PARTITIONS_NAME, partition_key
from ingest_assets.local_stack import database_url, open_instance
from ingest_assets.webserver import DEFAULT_URL, WebserverError, running_dev_url


@click.command()
@click.argument("source_name", metavar="SOURCE")
@click.option("--failed", "which", flag_value="failed", default=True, help="Unfinished partitions.")
@click.option("--all", "which", flag_value="all", help="Every shard of the source.")
@click.option(
    "--url", envvar="INGEST_DAGSTER_URL",
    help=f"The Dagster webserver (default: this home's `ingest dev`, else {DEFAULT_URL}).",
)  # fmt: skip
@click.option(
    "--stage", type=click.Choice(STAGES), default="documents", show_default=True,
    help="The first stage to run. After a model change, `embeddings`: the runs re-embed "
    "without listing the source again (as selecting `embeddings` in the UI does).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Launch even if a backfill is running over them.")
def backfill(source_name: str, which: str, url: str | None, stage: str, force: bool) -> None:
    """Launch a Dagster backfill of SOURCE's failed or missing shards (or --all of them)."""
    settings = cli_settings()
    instance = open_instance(settings, database_url(settings))
    url = url or running_dev_url(Path(os.environ["DAGSTER_HOME"])) or DEFAULT_URL
    known = instance.get_dynamic_partitions(SOURCES_PARTITIONS_NAME)
    if source_name not in known:
        raise click.ClickException(
            f"no source named {source_name!r} in Dagster (sources: {', '.join(known) or 'none'})"
        )
    if which == "all":
        partitions = [partition_key(source_name, s) for s in range(settings.shards)]
    else:
        partitions = unfinished_partitions(instance, source_name, settings.shards)
        if not partitions:
            console.print(f"{source_name}: every shard is materialised; nothing to backfill")
            return
    try:
        running = None if force else overlapping_backfill(url, partitions)
        if running is not None:
            raise click.ClickException(
                f"{running} of the {len(partitions)} partitions; nothing launched (wait for it, "
                "or pass --force to launch another)"
            )
        title = f"ingest backfill {source_name} --{which}" + (
            f" --stage {stage}" if stage != "documents" else ""
        )
        backfill_id = launch_backfill(url, partitions, title, stages_from(stage))
    except WebserverError as err:
        raise click.ClickException(str(err)) from err
    console.print(f"backfill {backfill_id}: {len(partitions)} partitions of {source_name}")
    out.print(backfill_id)
