"""The `ingest` command: one-shot runs, search and status over the project's instance."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import dagster as dg
import psycopg
import sqlalchemy.exc
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest_assets import fanout
from ingest_assets.backfill import (
    launch_backfill,
    overlapping_backfill,
    unfinished_partitions,
)
from ingest_assets.deployment_runs import submit_source
from ingest_assets.last_runs import LastRun, last_runs
from ingest_assets.lib.chunking import Chunker
from ingest_assets.local_stack import (
    cancel_orphaned_runs,
    database_url,
    open_database,
    open_instance,
    prepare_dagster_environment,
)
from ingest_assets.partitions import SOURCES_PARTITIONS_NAME, partition_key
from ingest_assets.progress import ProgressListener
from ingest_assets.resources.postgres import Database, exit_cleanly_on_sigterm
from ingest_assets.resources.providers import EmbeddingError, open_embedder
from ingest_assets.resources.providers.base import EmbedderSpec
from ingest_assets.runner import RunSummary, register, run_source
from ingest_assets.settings import IngestSettings, SettingsError, load_settings
from ingest_assets.sources.registry import (
    SOURCE_KINDS,
    InvalidSourceName,
    RegistryError,
    SourceRecord,
    default_source_name,
    load_registry,
    remove_from_registry,
    upsert_registry,
    validate_record,
    validate_source_name,
)
from ingest_assets.store.index_settings import ShardCountMismatch
from ingest_assets.store.search import Hit, search
from ingest_assets.store.sources import delete_source, get_source, list_sources
from ingest_assets.store.status import SourceStatus, source_status
from ingest_assets.store.vectors import drop_model, list_models, model_table
from ingest_assets.webserver import DEFAULT_URL, WebserverError, record_dev_url, running_dev_url

WORKSPACE_MODULE = {
    "module_name": "ingest_assets.definitions",
    "attribute": "defs",
    "location_name": "ingest_assets",
}
console = Console(stderr=True)
out = Console()


class RichProgress:
    """Live bars per stage, fed by the assets through the `progress` resource."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._tasks: dict[str, object] = {}

    def start(self, stage: str, total: int) -> None:
        if stage in self._tasks:  # another shard range's run: more of the same stage
            task = self._tasks[stage]
            more = (self._progress.tasks[task].total or 0) + total  # type: ignore[index]
            self._progress.update(task, total=more)  # type: ignore[arg-type]
            return
        self._tasks[stage] = self._progress.add_task(stage, total=total)

    def advance(self, stage: str, amount: int) -> None:
        self._progress.advance(self._tasks[stage], amount)  # type: ignore[arg-type]

    def finish(self, stage: str) -> None:
        task = self._tasks[stage]
        self._progress.update(task, completed=self._progress.tasks[task].total)  # type: ignore[index,arg-type]


class LineProgress:
    """Progress for logs and CI (no terminal): one line per stage every few seconds."""

    INTERVAL_S = 10.0

    def __init__(self) -> None:
        self._state: dict[str, list[float]] = {}  # stage -> [done, total, started, last print]

    def start(self, stage: str, total: int) -> None:
        if stage in self._state:  # another shard range's run: more of the same stage
            self._state[stage][1] += total
            return
        now = time.monotonic()
        self._state[stage] = [0, total, now, now]
        console.print(f"{stage}: {total} to process")

    def advance(self, stage: str, amount: int) -> None:
        state = self._state[stage]
        state[0] += amount
        now = time.monotonic()
        if now - state[3] >= self.INTERVAL_S:
            state[3] = now
            rate = state[0] / max(now - state[2], 1e-9)
            console.print(f"{stage}: {state[0]:.0f}/{state[1]:.0f} ({rate:.1f}/s)")

    def finish(self, stage: str) -> None:
        done, total, started, _ = self._state[stage]
        console.print(f"{stage}: {done:.0f}/{total:.0f} done in {time.monotonic() - started:.1f}s")


class ConfigurationError(click.ClickException):
    """A setting or the index's recorded layout is wrong: fix it, do not retry."""

    exit_code = 2


def _settings() -> IngestSettings:
    try:
        return load_settings()
    except SettingsError as err:
        raise ConfigurationError(str(err)) from None


def _first_line(err: BaseException) -> str:
    cause = getattr(err, "orig", None) or err  # SQLAlchemy wraps the driver's error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


class IngestGroup(click.Group):
    """Turns infrastructure failures into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (psycopg.Error, sqlalchemy.exc.SQLAlchemyError) as err:
            raise click.ClickException(
                f"database error: {_first_line(err)}. Work already committed is kept; "
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


@main.command()
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
    help="Shard ranges, one run each (default: 4 per --parallel for a first ingestion of a "
    "source of 1,000+ documents, else 1).",
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
    settings = _settings()
    record = _run_target(settings, target, name)
    source = record.name
    db_url = database_url(settings)
    db = open_database(settings)
    instance = open_instance(settings, db_url)
    register(settings, db, instance, record)
    if url:
        console.print(f"{source}: runs submitted to the Dagster deployment at {url}")
        try:
            with _progress_display() as display:
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
    with _progress_display() as display:
        summary = run_source(settings, db, instance, source, display, log_level, parallel, ranges)
    _finish_run(settings, db, summary)


@contextlib.contextmanager
def _progress_display() -> Iterator[ProgressListener]:
    """Live bars on a terminal, a line per stage otherwise."""
    if not console.is_terminal:
        yield LineProgress()
        return
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        yield RichProgress(bars)


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
        found = model_table(conn, settings.embedding_model)
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
    declared = {r.name: r for r in _registry(settings)}
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


@main.command(name="search")
@click.argument("query")
@click.option(
    "-k", "k", default=5, show_default=True, type=click.IntRange(min=1), help="Number of hits."
)
@click.option("--source", help="Only this source.")
@click.option("--model", help="Search this model's vectors (default: the active model).")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search_command(
    query: str, k: int, source: str | None, model: str | None, as_json: bool
) -> None:
    """Semantic search over the stored chunks."""
    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    settings = _settings()
    spec = settings.embedder_spec(model)
    db = open_database(settings)
    with db.connect() as conn:
        if source is not None and get_source(conn, source) is None:
            known = ", ".join(r.name for r in list_sources(conn)) or "none yet"
            raise click.ClickException(f"no source named {source!r} (sources: {known})")
        found = model_table(conn, spec.model)
        if found is None:
            models = [name for name, *_ in list_models(conn)]
            if not models:
                raise click.ClickException("nothing is indexed yet; run `ingest run PATH` first")
            raise click.ClickException(
                f"no vectors for model {spec.model!r} (models with vectors: "
                f"{', '.join(models)}; `ingest model list`)"
            )
        table, _ = found
        try:
            vector = asyncio.run(_embed_query(spec, query))
        except EmbeddingError as err:
            raise click.ClickException(str(err)) from err
        hits = search(conn, table, vector, k, source)
    if as_json:
        out.print_json(json.dumps([_hit_json(h) for h in hits]))
        return
    if not hits:
        console.print("no hits")
    for rank, hit in enumerate(hits, 1):
        out.print(f"[bold]{rank}. {hit.score:.3f}[/bold] {hit.source}:{hit.doc_id} #{hit.chunk}")
        if hit.context:
            out.print(f"   [dim]{hit.context}[/dim]")
        out.print("   " + " ".join(hit.text.split())[:240])


def _hit_json(hit: Hit) -> dict[str, object]:
    return {
        "score": round(hit.score, 6),
        "source": hit.source,
        "doc_id": hit.doc_id,
        "uri": hit.uri,
        "chunk": hit.chunk,
        "context": hit.context,
        "text": hit.text,
    }


async def _embed_query(spec: EmbedderSpec, query: str):  # type: ignore[no-untyped-def]
    async with open_embedder(spec) as embedder:
        return (await embedder.embed([query]))[0]


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
def status(as_json: bool) -> None:
    """Per source: documents, chunks, vectors per model, pending work, quarantined documents
    and the latest Dagster run."""
    settings = _settings()
    db_url = database_url(settings)
    active = settings.embedding_model
    with open_database(settings).connect() as conn:
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
        out.print_json(json.dumps([_status_json(r, active, runs.get(r.source)) for r in rows]))
        return
    if not rows:
        console.print("no sources yet: `ingest run PATH` or `ingest source add NAME PATH`")
    else:
        out.print(_sources_table(rows))
        out.print(_pending_table(rows))
        out.print(_models_table(rows, models, active))
        out.print(_runs_table(rows, runs))
    out.print(f"active model: {active} ({settings.embedding_provider})")


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
        console.print(f"[yellow]last runs unknown[/yellow]: Dagster instance: {_first_line(err)}")
        return {}


def _status_json(row: SourceStatus, active: str, run: LastRun | None) -> dict[str, object]:
    return {
        **row.as_dict(),
        "vectors_by_model": _vectors(row, active),
        "active_model": active,
        "last_run": run.as_dict() if run else None,
    }


def _sources_table(rows: list[SourceStatus]) -> Table:
    return _count_table(
        "Index per source (vectors: of the active model)",
        ("documents", "chunks", "vectors", "quarantined", "deleted", "skipped"),
        [
            (
                r.source,
                (r.documents, r.chunks, r.chunks_with_vector, r.quarantined, r.deleted, r.skipped),
            )
            for r in rows
        ],
    )


def _pending_table(rows: list[SourceStatus]) -> Table:
    return _count_table(
        "Pending work (failed reads are read again on the next runs)",
        ("documents to chunk", "chunks to embed", "failed reads"),
        [(r.source, (r.pending_chunking, r.pending_embedding, r.failed_reads)) for r in rows],
    )


def _count_table(
    title: str, headers: tuple[str, ...], rows: list[tuple[str, tuple[int, ...]]]
) -> Table:
    """One row per source and, for several sources, a total row."""
    table = Table(title=title)
    table.add_column("source", overflow="fold")
    for header in headers:
        table.add_column(header, justify="right")
    for i, (name, counts) in enumerate(rows):
        table.add_row(name, *map(str, counts), end_section=i == len(rows) - 1)
    if len(rows) > 1:
        table.add_row(
            "total", *(str(sum(column)) for column in zip(*(c for _, c in rows), strict=True))
        )
    return table


def _models_table(
    rows: list[SourceStatus], models: dict[str, tuple[str, int]], active: str
) -> Table:
    """Sources down, models across: live chunks with a vector in each model's table."""
    names = sorted(models.keys() | {active})
    table = _count_table(
        "Chunks with a vector, per model (* active)",
        ("chunks", *(f"{name} *" if name == active else name for name in names)),
        [(r.source, (r.chunks, *(_vectors(r, active)[n] for n in names))) for r in rows],
    )
    stored = [str(models[n][1]) if n in models else "no table" for n in names]
    table.add_row("[dim]vectors stored (distinct texts)[/dim]", "", *stored)
    return table


def _vectors(row: SourceStatus, active: str) -> dict[str, int]:
    """Live chunks with a vector per model, the active one included even without a table."""
    return dict(sorted({**row.vectors_by_model, active: row.chunks_with_vector}.items()))


_RUN_STATUS_STYLE = {"SUCCESS": "green", "FAILURE": "red", "CANCELED": "yellow"}


def _runs_table(rows: list[SourceStatus], runs: dict[str, LastRun | None]) -> Table:
    table = Table("source", "status", "trigger", "when", "run", title="Last run per source")
    now = time.time()
    for r in rows:
        run = runs.get(r.source)
        if run is None:
            table.add_row(r.source, "[dim]no runs yet[/dim]", "", "", "")
            continue
        style = _RUN_STATUS_STYLE.get(run.status, "cyan")
        table.add_row(
            r.source, f"[{style}]{run.status}[/{style}]", run.trigger, run.when(now), run.run_id[:8]
        )
    return table


@main.group()
def source() -> None:
    """Manage the source registry (sources.yaml); the sources sensor picks changes up."""


@source.command(name="add")
@click.argument("name")
@click.argument("location")
@click.option(
    "--kind",
    type=click.Choice(sorted(SOURCE_KINDS)),
    help="Default: folder for a directory, sitemap for a URL, urls for a file of URLs.",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A kind's option, e.g. -o delay_s=0.5 or -o dsn_env=NOTES_DSN (repeatable).",
)
def source_add(name: str, location: str, kind: str | None, options: tuple[str, ...]) -> None:
    """Declare source NAME at LOCATION: a folder, a sitemap URL, a file of page URLs, or a
    PostgreSQL table (--kind postgres_table -o dsn_env=VAR). The sensors ingest it, or
    `ingest run NAME`."""
    settings = _settings()
    kind = kind or _guess_kind(location)
    if kind == "folder" or kind == "urls":
        location = str(Path(location).expanduser().resolve())
    try:
        record = validate_record(SourceRecord(name, kind, location, _parse_options(options)))
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    upsert_registry(settings.sources_path, record)
    console.print(f"source {name} ({kind}) -> {record.location} (in {settings.sources_path})")


def _guess_kind(location: str) -> str:
    if location.startswith(("http://", "https://")):
        return "sitemap"
    path = Path(location).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "urls"
    raise click.ClickException(
        f"{location}: not a folder, a file of URLs or a sitemap URL; pass --kind"
    )


def _parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.ClickException(f"option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value) if value else ""
    return options


@source.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def source_list(as_json: bool) -> None:
    """List the declared sources."""
    records = _registry(_settings())
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in records]))
        return
    for record in records:
        out.print(f"{record.name}\t{record.kind}\t{record.location}")


@source.command(name="remove")
@click.argument("name")
def source_remove(name: str) -> None:
    """Remove source NAME: its documents leave search; its partitions go at the next tick."""
    settings = _settings()
    if not remove_from_registry(settings.sources_path, name):
        raise click.ClickException(f"no source named {name!r} in {settings.sources_path}")
    with open_database(settings).connect() as conn:
        removed = delete_source(conn, name)
    console.print(f"removed source {name} ({removed} documents)")


def _registry(settings: IngestSettings) -> list[SourceRecord]:
    try:
        return load_registry(settings.sources_path)
    except RegistryError as err:
        raise click.ClickException(str(err)) from err


@main.group()
def model() -> None:
    """Embedding models with stored vectors."""


@model.command(name="list")
def model_list() -> None:
    """Models with a vector table, their dimension and vector count."""
    settings = _settings()
    with open_database(settings).connect() as conn:
        rows = list_models(conn)
    table = Table("model", "dimension", "vectors", "table", "active")
    for name, dimension, table_name, count in rows:
        active = "yes" if name == settings.embedding_model else ""
        table.add_row(name, str(dimension), str(count), table_name, active)
    out.print(table)


@model.command(name="drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def model_drop(name: str, yes: bool) -> None:
    """Drop model NAME's vectors (the active model's are kept unless you switch first)."""
    settings = _settings()
    if name == settings.embedding_model:
        raise click.ClickException(
            f"{name!r} is the active model; switch models before dropping it"
        )
    if not yes:
        click.confirm(f"Drop every vector of model {name!r}?", abort=True)
    with open_database(settings).connect() as conn:
        if not drop_model(conn, name):
            raise click.ClickException(f"no vectors stored for model {name!r}")
    console.print(f"dropped model {name}")


@main.command()
@click.argument("source_name", metavar="SOURCE")
@click.option("--failed", "which", flag_value="failed", default=True, help="Unfinished partitions.")
@click.option("--all", "which", flag_value="all", help="Every shard of the source.")
@click.option(
    "--url", envvar="INGEST_DAGSTER_URL",
    help=f"The Dagster webserver (default: this home's `ingest dev`, else {DEFAULT_URL}).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Launch even if a backfill is running over them.")
def backfill(source_name: str, which: str, url: str | None, force: bool) -> None:
    """Launch a Dagster backfill of SOURCE's failed or missing shards (or --all of them)."""
    settings = _settings()
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
        backfill_id = launch_backfill(url, partitions, f"ingest backfill {source_name} --{which}")
    except WebserverError as err:
        raise click.ClickException(str(err)) from err
    console.print(f"backfill {backfill_id}: {len(partitions)} partitions of {source_name}")
    out.print(backfill_id)


@main.command()
@click.option("--port", default=3000, show_default=True)
@click.option("--verbose", is_flag=True, help="Show the daemon's and webserver's INFO lines.")
def dev(port: int, verbose: bool) -> None:
    """Run the Dagster UI and daemon on the project's instance (Ctrl-C stops both)."""
    settings = _settings()
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


if __name__ == "__main__":
    main()
