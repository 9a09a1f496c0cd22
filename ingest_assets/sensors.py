"""Sensors: keep the `source` partitions in step with the registry, and request runs for
shards whose documents changed. Thin: the listing and the database go through resources."""

import hashlib
import json
import logging
import time
from typing import Any

import dagster as dg
import psycopg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ingest_assets.lib.fingerprints import changed_shards, contiguous_ranges, shard_digests
from ingest_assets.lib.hashing import shard_of
from ingest_assets.partitions import SOURCES_PARTITIONS_NAME, partition_key, sources_partitions
from ingest_assets.resources.postgres import PostgresResource
from ingest_assets.settings import IngestSettings
from ingest_assets.sources import (
    DocumentRef,
    Source,
    SourceReadError,
    SourceRecord,
    notifications,
    open_source,
)
from ingest_assets.sources.registry import RegistryError, load_registry
from ingest_assets.store.sources import (
    delete_source,
    document_fingerprints,
    list_sources,
    register_source,
)

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SOURCE_TAG = "ingest/source"
# The notify sensor only drains a held LISTEN connection: cheap enough to run often.
NOTIFY_SENSOR_INTERVAL_S = 2
_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def range_request(
    source: str, first: int, last: int, run_key: str | None, trigger: str
) -> dg.RunRequest:
    """One run over a contiguous range of a source's shards."""
    return dg.RunRequest(
        run_key=run_key,
        tags={
            RANGE_START: partition_key(source, first),
            RANGE_END: partition_key(source, last),
            SOURCE_TAG: source,
            "ingest/trigger": trigger,
        },
    )


def has_unfinished_run(instance: dg.DagsterInstance, source: str) -> bool:
    """A queued or running run of the source: its outcome is not in the database yet."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=_UNFINISHED, tags={SOURCE_TAG: source}), limit=1
    )
    return bool(records)


def build_sensors(
    settings: IngestSettings, job: UnresolvedAssetJobDefinition
) -> list[dg.SensorDefinition]:
    shards = settings.shards

    @dg.sensor(
        name="sources_sensor",
        job=job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps the source partitions in step with sources.yaml; ingests new sources.",
    )
    def sources_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.SensorResult:
        try:
            declared = {r.name: r for r in load_registry(settings.sources_path)}
        except RegistryError as err:
            raise dg.Failure(str(err)) from err
        known = set(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS_NAME))
        added = sorted(declared.keys() - known)
        removed = sorted(known - declared.keys())
        with postgres.database().connect() as conn:
            registered = {r.name: r for r in list_sources(conn)}
            for record in declared.values():
                if registered.get(record.name) != record:
                    register_source(conn, record)
            for name in registered.keys() - declared.keys():
                delete_source(conn, name)
            conn.commit()
        requests = [range_request(name, 0, shards - 1, None, "new") for name in added]
        partition_requests: list[
            dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest
        ] = []
        if added:
            partition_requests.append(sources_partitions.build_add_request(added))
        if removed:
            partition_requests.append(
                dg.DeleteDynamicPartitionsRequest(SOURCES_PARTITIONS_NAME, removed)
            )
        if added or removed:
            context.log.info(f"sources added: {added}; removed: {removed}")
        return dg.SensorResult(
            run_requests=requests, dynamic_partitions_requests=partition_requests
        )

    @dg.sensor(
        name="changes_sensor",
        job=job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests runs only for shards with new, changed or deleted documents.",
    )
    def changes_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.SensorResult:
        cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS_NAME))
        requests: list[dg.RunRequest] = []
        next_cursor: dict[str, Any] = {}
        with postgres.database().connect() as conn:
            for record in list_sources(conn):
                if record.name not in known:
                    continue  # the sources sensor adds it and requests its first run
                entry = _cursor_entry(cursor.get(record.name))
                if has_unfinished_run(context.instance, record.name):
                    # Compare again once it has finished; keep the old cursor entry.
                    if record.name in cursor:
                        next_cursor[record.name] = entry
                    continue
                found, next_cursor[record.name] = source_changes(
                    conn, record, entry, shards, "change", context.log
                )
                requests += found
            conn.rollback()
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(next_cursor))

    @dg.sensor(
        name="notify_sensor",
        job=job,
        minimum_interval_seconds=NOTIFY_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Wakes at a NOTIFY on a table source's channel and requests runs for its changed "
            "shards at once, instead of at the change sensor's next poll."
        ),
    )
    def notify_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.SensorResult:
        requests: list[dg.RunRequest] = []
        with postgres.database().connect() as conn:
            for record in list_sources(conn):
                channel = record.options.get("notify_channel")
                if record.kind != "postgres_table" or not channel:
                    continue
                try:
                    woken = notifications.drain(record, str(channel))
                except (SourceReadError, ValueError) as err:
                    context.log.warning(f"{record.name}: cannot listen on {channel!r}: {err}")
                    continue
                if not woken or has_unfinished_run(context.instance, record.name):
                    # A change while a run is going: the change sensor's next poll sees it.
                    continue
                context.log.info(f"{record.name}: {woken} notification(s) on {channel!r}")
                found, _ = source_changes(conn, record, {}, shards, "notify", context.log)
                requests += found
            conn.rollback()
        return dg.SensorResult(run_requests=requests)

    return [sources_sensor, changes_sensor, notify_sensor]


def _cursor_entry(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # cursors written before entries became mappings
        return {"listing": value}
    return dict(value or {})


def source_changes(
    conn: psycopg.Connection,
    record: SourceRecord,
    entry: dict[str, Any],
    shards: int,
    trigger: str,
    log: logging.Logger | dg.DagsterLogManager,
) -> tuple[list[dg.RunRequest], dict[str, Any]]:
    """Run requests for the source's shards whose documents differ from the database, and
    the cursor entry to keep. Cheap first: a table's change token, then the listing's
    fingerprints; web pages are asked "changed since?" at most every `recheck_s`."""
    try:
        source = open_source(record)
    except ValueError as err:
        log.warning(str(err))
        return [], entry
    try:
        return _changes(conn, record, source, entry, shards, trigger)
    except SourceReadError as err:
        log.warning(f"{record.name}: {err}")
        return [], entry
    finally:
        source.close()


def _changes(
    conn: psycopg.Connection,
    record: SourceRecord,
    source: Source,
    entry: dict[str, Any],
    shards: int,
    trigger: str,
) -> tuple[list[dg.RunRequest], dict[str, Any]]:
    entry = dict(entry)
    token = source.change_token()
    if token is not None:
        if entry.get("token") == token:
            return [], entry  # no row added, deleted or touched since the last look
        entry["token"] = token
    stored_rows = list(document_fingerprints(conn, record.name))
    stored_fingerprints = {doc_id: fingerprint for doc_id, _, fingerprint in stored_rows}
    refs = list(source.list_documents())
    if any(ref.fingerprint is None for ref in refs):
        now = time.time()
        if now - float(entry.get("checked", 0.0)) >= source.recheck_s:
            refs = list(source.revalidate(refs, stored_fingerprints))
            entry["checked"] = now
        else:  # between rechecks only added and removed pages count
            refs = [
                DocumentRef(r.doc_id, r.uri, stored_fingerprints.get(r.doc_id), r.suffix)
                for r in refs
            ]
    listed = shard_digests((r.doc_id, shard_of(r.doc_id, shards), r.fingerprint) for r in refs)
    listing = json.dumps(sorted(listed.items()))
    if entry.get("listing") == listing:
        return [], entry  # same listing as last tick: its runs were requested then
    entry["listing"] = listing
    stored = shard_digests(stored_rows)
    requests = []
    for first, last in contiguous_ranges(changed_shards(listed, stored)):
        # Both sides of the difference: a folder that returns to an earlier listing (a file
        # added, then deleted again) still gets a new run.
        span = range(first, last + 1)
        digest = "".join(f"{listed.get(s, '-')}{stored.get(s, '-')}" for s in span)
        fingerprint = hashlib.sha1(digest.encode()).hexdigest()
        key = f"{trigger}:{record.name}:{first}-{last}:{fingerprint}"
        requests.append(range_request(record.name, first, last, key, trigger))
    return requests, entry
