"""The process environment that `ingest` commands share with `dagster dev`: database URL,
DAGSTER_HOME with the project's dagster.yaml, and Dagster's storage in the same PostgreSQL."""

from __future__ import annotations

import contextlib
import os
from importlib import resources
from pathlib import Path

import dagster as dg
import sqlalchemy.exc

from ingest_assets.database import database_url as database_url  # re-exported for the commands
from ingest_assets.database import ensure_database, url_for_database
from ingest_assets.database import open_database as open_database  # re-exported for the commands
from ingest_assets.defs.resources.embeddings import EMBEDDING_POOL
from ingest_assets.settings import IngestSettings

DAGSTER_DATABASE = "dagster"


def prepare_dagster_environment(settings: IngestSettings, db_url: str) -> Path:
    """Point DAGSTER_HOME and DAGSTER_PG_URL at the project's instance unless already set."""
    home = os.environ.get("DAGSTER_HOME")
    if home is None:
        dagster_home = settings.dagster_home
        dagster_home.mkdir(parents=True, exist_ok=True)
        packaged = (resources.files("ingest_assets") / "data" / "dagster.yaml").read_text()
        config = dagster_home / "dagster.yaml"
        if not config.exists() or config.read_text() != packaged:
            config.write_text(packaged)
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    if "DAGSTER_PG_URL" not in os.environ:
        ensure_database(db_url, DAGSTER_DATABASE, synchronous_commit=False)
        os.environ["DAGSTER_PG_URL"] = dagster_storage_url(db_url)
    return Path(os.environ["DAGSTER_HOME"])


def dagster_storage_url(db_url: str) -> str:
    """URL of Dagster's own database on the same server. SQLAlchemy 2.1 picks psycopg 3 for a
    bare postgresql:// URL, and dagster-postgres' NOTIFY with a bound parameter fails there."""
    return url_for_database(db_url, DAGSTER_DATABASE).replace(
        "postgresql://", "postgresql+psycopg2://", 1
    )


def open_instance(settings: IngestSettings, db_url: str) -> dg.DagsterInstance:
    prepare_dagster_environment(settings, db_url)
    from ingest_assets.dagster_storage import keep_connections  # dagster_postgres: ~0.5 s

    instance = dg.DagsterInstance.get()
    # The project's dagster.yaml pools already (PooledPostgresStorage); an instance configured
    # with dagster_postgres's own storage would open a connection per event of a run.
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        keep_connections(storage)
    _initialize_pool(instance)
    return instance


def _initialize_pool(instance: dg.DagsterInstance) -> None:
    """Create the embedding pool's limit before any run does: two first runs at once would
    otherwise both insert it, and the loser's run fails inside Dagster (whose insert-or-update
    continues in an aborted PostgreSQL transaction, so it must not run for an existing key)."""
    storage = instance.event_log_storage
    if EMBEDDING_POOL in storage.get_concurrency_keys():
        return
    with contextlib.suppress(sqlalchemy.exc.DBAPIError):  # another process was first
        storage.initialize_concurrency_limit_to_default(EMBEDDING_POOL)


def cancel_orphaned_runs(instance: dg.DagsterInstance) -> int:
    """After `ingest dev` has stopped, no run it launched can still be going: mark those
    left started as canceled. `ingest run`'s runs (another command's, maybe still going) are
    left alone. Returns how many were canceled."""
    started = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    started.append(dg.DagsterRunStatus.CANCELING)
    canceled = 0
    for record in instance.get_run_records(dg.RunsFilter(statuses=started)):
        if record.dagster_run.tags.get("ingest/trigger") != "cli":
            end_orphaned_run(instance, record.dagster_run, "`ingest dev` was stopped")
            canceled += 1
    return canceled


def end_orphaned_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, message: str, canceled: bool = True
) -> None:
    """A run whose process is gone: mark it ended (canceled, or failed) unless it finished,
    and give back the pool slots its steps held. With no daemon beside `ingest run` (or once
    `ingest dev` has stopped) nothing else would: a slot a dead run kept is one fewer for
    every later run."""
    if not run.is_finished:
        if canceled:
            instance.report_run_canceled(run, message=message)
        else:
            instance.report_run_failed(run)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
