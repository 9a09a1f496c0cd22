"""`ingest run`: one source's runs, forked here or submitted to a Dagster deployment."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ingest_assets import fanout
from ingest_assets.cli.common import cli_settings, console, registry
from ingest_assets.cli.display import progress_display
from ingest_assets.database import Database
from ingest_assets.lib.chunking import Chunker
from ingest_assets.local_stack import database_url, open_database, open_instance
from ingest_assets.runs.deployment import submit_source
from ingest_assets.runs.local import run_source
from ingest_assets.runs.plan import register
from ingest_assets.runs.report import RunSummary
from ingest_assets.settings import IngestSettings
from ingest_assets.sources.registry import (
    InvalidSourceName,
    SourceRecord,
    default_source_name,
    validate_source_name,
)
from ingest_assets.store.status import source_status
from ingest_assets.store.vectors import model_table
from ingest_assets.webserver import WebserverError


@click.command()
@click.argument("target")
@click.option("--name", help="Source name for a folder (default: the folder's name).")
@click.option("--verbose", is_flag=True, help="Show Dagster's log lines.")
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=fanout.RUNS_AT_ONCE,
    show_default="CPUs + 1",
    help="Runs over disjoint shard ranges at once (1: one run over all shards).",
)
@click.option(
    "--ranges",
    type=click.IntRange(min=1),
    help="Shard ranges, one run each (default, for a first ingestion of a source of 1,000+ "
    "documents: one per 500 documents, from --parallel up to 4 per --parallel; else 1).",
)
@click.option(
    "--url", envvar="INGEST_DAGSTER_URL",
    help="Submit the runs to the Dagster deployment whose webserver is at URL, and follow them.",
)  # fmt: skip
def run(
    target: str, name: str | None, verbose: bool, parallel: int, ranges: int | None, url: str | None
) -> None:
    """Ingest TARGET: a folder (registered as a source on the way), or the name of a source
    declared with `ingest source add` (a sitemap, a file of URLs, a PostgreSQL table).

    The runs follow the same plan and carry the same tags on either route: forked by this
    command (the fast path on one machine), or with --url submitted to a Dagster
    deployment's run queue and launcher, beside the sensors' and backfills' runs."""
    settings = cli_settings()
    record = _run_target(settings, target, name)
    source = record.name
    db_url = database_url(settings)
    db = open_database(settings)
    instance = open_instance(settings, db_url)
    register(settings, db, instance, record)
    if url:
        console.print(f"{source}: runs submitted to the Dagster deployment at {url}")
        try:
            with progress_display() as display:
                summary = submit_source(
                    settings, db, instance, url, source, display, ranges, warn=console.print
                )
        except WebserverError as err:
            raise click.ClickException(str(err)) from err
        _finish_run(settings, db, summary)
        return
    # Without --verbose, failures reach the terminal as the closing summary's one line, not as
    # Dagster's step-failure events with their stack traces.
    log_level = "INFO" if verbose else "CRITICAL"
    with progress_display() as display:
        summary = run_source(settings, db, instance, source, display, log_level, parallel, ranges)
    _finish_run(settings, db, summary)


def _finish_run(settings: IngestSettings, db: Database, summary: RunSummary) -> None:
    if summary.interrupted is not None:
        _print_stored(settings, db, summary)
        sys.exit(128 + summary.interrupted)
    _print_summary(summary)
    if not summary.success:
        sys.exit(1)


def _print_stored(settings: IngestSettings, db: Database, summary: RunSummary) -> None:
    """What the index holds for the source now: an interrupted run's truth, whatever its
    runs managed to report."""
    with db.connect() as conn:
        found = model_table(conn, settings.embedding.model)
        rows = source_status(
            conn, found[0] if found else None, Chunker(settings.chunk_tokens).signature
        )
    row = next((r for r in rows if r.source == summary.source), None)
    stored = (
        f"{row.documents} documents, {row.chunks} chunks, {row.chunks_with_vector} with a vector"
        if row
        else "nothing"
    )
    name = signal.Signals(summary.interrupted or signal.SIGINT).name
    console.print(
        f"{summary.source}: interrupted ({name}) after {summary.seconds:.1f}s, runs stopped; "
        f"stored so far: {stored}; `ingest run {summary.source}` finishes the rest"
    )


def _run_target(settings: IngestSettings, target: str, name: str | None) -> SourceRecord:
    path = Path(target).expanduser()
    if path.is_dir():
        try:
            source = validate_source_name(name or default_source_name(path))
        except InvalidSourceName as err:
            raise click.ClickException(str(err)) from err
        return SourceRecord(source, "folder", str(path.resolve()))
    declared = {r.name: r for r in registry(settings)}
    if target in declared:
        return declared[target]
    raise click.ClickException(
        f"{target!r} is neither a folder nor a source in {settings.sources_path} "
        "(declare one with `ingest source add NAME LOCATION`)"
    )


def _print_summary(summary: RunSummary) -> None:
    t = summary.totals
    console.print(
        f"[bold]{summary.source}[/bold]: documents {t['documents_new']} new, "
        f"{t['documents_changed']} changed, {t['documents_unchanged']} unchanged, "
        f"{t['documents_deleted']} deleted, {len(summary.quarantined)} quarantined"
        + (f", {t['documents_failed']} failed" if t["documents_failed"] else "")
        + (f", {t['documents_skipped']} skipped" if t["documents_skipped"] else "")
        + f"; chunks {t['chunks_written']} written; vectors {t['texts_embedded']} written, "
        f"{t['texts_reused']} reused; {summary.seconds:.1f}s "
        + (f"(runs {summary.run_id})" if len(summary.run_ids) > 1 else f"(run {summary.run_id})")
    )
    if t["texts_embedded"] == 0 and summary.success:
        console.print("Nothing to embed: every chunk already has a vector.")
    for reason, entry in sorted(summary.skipped.items(), key=lambda kv: -kv[1]["count"]):
        console.print(f"skipped {entry['count']} ({reason}), e.g. {', '.join(entry['examples'])}")
    for doc_id, reason in summary.quarantined[:20]:
        console.print(f"[yellow]quarantined[/yellow] {doc_id}: {reason}")
    if summary.error:
        console.print(f"[red]run failed[/red]: {summary.error}")
