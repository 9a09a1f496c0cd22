"""One-shot ingestion of a source through the Dagster instance (used by `ingest run`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ingest_assets.definitions import INGEST_JOB, build_definitions
from ingest_assets.partitions import SOURCES_PARTITIONS_NAME, source_range
from ingest_assets.progress import ProgressListener
from ingest_assets.resources.postgres import Database
from ingest_assets.sensors import SOURCE_TAG
from ingest_assets.settings import IngestSettings
from ingest_assets.sources.registry import SourceRecord, upsert_registry
from ingest_assets.store.documents import quarantined_documents
from ingest_assets.store.sources import register_source

# Keys of the stages' per-partition metadata that the closing summary adds up.
SUMMED_METADATA = (
    "documents_new",
    "documents_changed",
    "documents_unchanged",
    "documents_deleted",
    "documents_failed",
    "chunks_written",
    "texts_embedded",
    "texts_reused",
)


@dataclass
class RunSummary:
    source: str
    run_id: str
    success: bool
    seconds: float
    totals: Counter[str] = field(default_factory=Counter)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


def register(
    settings: IngestSettings, db: Database, instance: dg.DagsterInstance, record: SourceRecord
) -> None:
    """Declare the source in the registry file and the database, and add its partition key
    so the UI lists its shards at once (the sources sensor would, within a tick)."""
    upsert_registry(settings.sources_path, record)
    with db.connect() as conn:
        register_source(conn, record)
        conn.commit()
    if not instance.has_dynamic_partition(SOURCES_PARTITIONS_NAME, record.name):
        instance.add_dynamic_partitions(SOURCES_PARTITIONS_NAME, [record.name])


def run_source(
    settings: IngestSettings,
    db: Database,
    instance: dg.DagsterInstance,
    source: str,
    progress: ProgressListener | None = None,
    log_level: str = "WARNING",
) -> RunSummary:
    """Materialise every shard of `source` in one ranged run of the ingest job."""
    defs = build_definitions(settings, progress=progress)
    first, last = source_range(source, settings.shards)
    started = time.perf_counter()
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
            "ingest/trigger": "cli",
            SOURCE_TAG: source,
        },
        raise_on_error=False,
    )
    summary = RunSummary(
        source=source,
        run_id=result.run_id,
        success=result.success,
        seconds=time.perf_counter() - started,
    )
    for event in result.get_asset_materialization_events():
        metadata = event.step_materialization_data.materialization.metadata
        for key in SUMMED_METADATA:
            if key in metadata:
                summary.totals[key] += int(metadata[key].value)  # type: ignore[arg-type]
    if not result.success:
        summary.error = _failure_message(result)
    with db.connect() as conn:
        summary.quarantined = [(d, r) for d, _, r in quarantined_documents(conn, source)]
    return summary


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            where = f"step {event.step_key}" if event.step_key else "the run"
            return f"{where} failed: {_root_cause(error)}"
    return "the run failed; see its logs in the Dagster UI"


def _root_cause(error: Any) -> str:
    """The innermost error's message: ours, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
