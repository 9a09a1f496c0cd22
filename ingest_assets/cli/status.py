"""`ingest status`: the index per source and each source's latest Dagster run."""

from __future__ import annotations

import json

import click
import dagster as dg
import sqlalchemy.exc

from ingest_assets.cli.common import cli_settings, console, first_line, out
from ingest_assets.cli.display import (
    models_table,
    pending_table,
    runs_table,
    sources_table,
    vectors,
)
from ingest_assets.last_runs import LastRun, last_runs
from ingest_assets.lib.chunking import Chunker
from ingest_assets.local_stack import database_url, open_database, prepare_dagster_environment
from ingest_assets.settings import IngestSettings
from ingest_assets.store.serving import serving_or
from ingest_assets.store.status import SourceStatus, source_status
from ingest_assets.store.vectors import list_models, model_table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
def status(as_json: bool) -> None:
    """Per source: documents, chunks, vectors per model, pending work, quarantined documents
    and the latest Dagster run."""
    settings = cli_settings()
    db_url = database_url(settings)
    building = settings.embedding.model
    with open_database(settings).connect() as conn:
        active = serving_or(conn, building)
        found = model_table(conn, active)
        models = {name: (table_name, count) for name, _, table_name, count in list_models(conn)}
        rows = source_status(
            conn,
            found[0] if found else None,
            Chunker(settings.chunk_tokens).signature,
            [(name, table_name) for name, (table_name, _) in models.items()],
        )
    runs = _last_runs(settings, db_url, [r.source for r in rows]) if rows else {}
    if as_json:
        listed = [_status_json(r, active, building, runs.get(r.source)) for r in rows]
        out.print_json(json.dumps(listed))
        return
    if not rows:
        console.print("no sources yet: `ingest run PATH` or `ingest source add NAME PATH`")
    else:
        out.print(sources_table(rows))
        out.print(pending_table(rows))
        out.print(models_table(rows, models, active, building))
        out.print(runs_table(rows, runs))
    out.print(f"serving model: {active}")
    if building != active:
        chunks = sum(r.chunks for r in rows)
        done = sum(r.vectors_by_model.get(building, 0) for r in rows)
        out.print(
            f"building: {building} ({settings.embedding.provider}), {done}/{chunks} chunks "
            f"with a vector ({100 * done / max(chunks, 1):.0f}%); `ingest model plan` for the "
            f"rest, `ingest model activate {building}` when complete"
        )


def _last_runs(
    settings: IngestSettings, db_url: str, sources: list[str]
) -> dict[str, LastRun | None]:
    """Each source's newest run in the project's Dagster instance. When the instance cannot
    be opened, a warning and no runs: the index's own status is still worth showing."""
    try:
        prepare_dagster_environment(settings, db_url)
        with dg.DagsterInstance.get() as instance:
            # One pooled connection for the few queries (a new one each costs ~10 ms), and
            # a statement timeout so a locked table cannot stall the command.
            instance.optimize_for_webserver(statement_timeout=5000, pool_recycle=-1, max_overflow=0)
            return last_runs(instance, sources, settings.shards)
    except (sqlalchemy.exc.SQLAlchemyError, dg.DagsterError) as err:
        console.print(f"[yellow]last runs unknown[/yellow]: Dagster instance: {first_line(err)}")
        return {}


def _status_json(
    row: SourceStatus, active: str, building: str, run: LastRun | None
) -> dict[str, object]:
    return {
        **row.as_dict(),
        "vectors_by_model": vectors(row, active, building),
        "active_model": active,
        "serving_model": active,
        "building_model": building,
        "last_run": run.as_dict() if run else None,
    }
