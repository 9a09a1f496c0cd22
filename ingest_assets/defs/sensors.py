"""Sensors: keep the `source` partitions in step with the registry, and request runs for
shards whose documents changed. Thin: the listing and the database go through resources."""

import hashlib
import json
import logging
import time
from typing import Any

import dagster as dg
import psycopg

from ingest_assets import fanout
from ingest_assets.defs.partitions import (
    SOURCE_TAG,
    SOURCES_PARTITIONS_NAME,
    range_tags,
    sources_partitions,
)
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.lib.fingerprints import shard_digests
from ingest_assets.lib.hashing import shard_of
from ingest_assets.pipeline.changes import StoredFingerprint, changed_shards
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

# The notify sensor only drains held signals (LISTEN, a folder watcher): cheap enough to run
# often. Dagster's sensor daemon ticks a sensor at most every 5 s whatever this says.
NOTIFY_SENSOR_INTERVAL_S = 2
SOURCES_SENSOR_INTERVAL_S = 5
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
    return dg.RunRequest(run_key=run_key, tags=range_tags(source, first, last, trigger))


def has_unfinished_run(instance: dg.DagsterInstance, source: str) -> bool:
    """A queued or running run of the source: its outcome is not in the database yet."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=_UNFINISHED, tags={SOURCE_TAG: source}), limit=1
    )
    return bool(records)


def build_sensors(settings: IngestSettings, job_name: str) -> list[dg.SensorDefinition]:
    shards = settings.shards

    @dg.sensor(
        name="sources_sensor",
        job_name=job_name,
        # Reads one YAML file and compares it with the database: cheap, so a new source is
        # picked up within seconds whatever the change sensor's (listing) interval is.
        minimum_interval_seconds=min(settings.sensor_interval_s, SOURCES_SENSOR_INTERVAL_S),
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
        requests = [
            range_request(name, first, last, None, "new")
            for name in added
            for first, last in fanout.for_new_source(
                declared[name], shards, warn=context.log.warning
            )
        ]
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
        job_name=job_name,
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
        job_name=job_name,
        minimum_interval_seconds=NOTIFY_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Wakes at a source's own change signal (a NOTIFY on a table source's channel, a "
            "file saved in a folder) and requests runs for its changed shards at once, instead "
            "of at the change sensor's next poll."
        ),
    )
    def notify_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.SensorResult:
        # Sources woken while a run of theirs was unfinished: compared once it has ended.
        waiting = set(json.loads(context.cursor or "[]"))
        known = set(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS_NAME))
        requests: list[dg.RunRequest] = []
        with postgres.database().connect() as conn:
            for record in list_sources(conn):
                try:
                    woken = _drain_signal(record)
                except (SourceReadError, ValueError) as err:
                    context.log.warning(f"{record.name}: no change signal: {err}")
                    continue
                if record.name not in known or not (woken or record.name in waiting):
                    continue
                if has_unfinished_run(context.instance, record.name):
                    waiting.add(record.name)
                    continue
                waiting.discard(record.name)
                found, _ = source_changes(conn, record, {}, shards, "notify", context.log)
                requests += found
            conn.rollback()
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(waiting)))

    return [sources_sensor, changes_sensor, notify_sensor]


def _drain_signal(record: SourceRecord) -> int:
    """Signals that arrived for the source since the last tick (0 for a source without one)."""
    if record.kind == "folder":
        return notifications.drain_folder(record)
    channel = record.options.get("notify_channel")
    if record.kind == "postgres_table" and channel:
        return notifications.drain(record, str(channel))
    return 0


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
    known = {doc_id: StoredFingerprint(f) for doc_id, f in stored_fingerprints.items()}
    changed = changed_shards(refs, known, source.unlisted_prefixes, shards)
    requests = []
    for first, last in fanout.changed(changed):
        # Both sides of the difference: a folder that returns to an earlier listing (a file
        # added, then deleted again) still gets a new run.
        span = range(first, last + 1)
        digest = "".join(f"{listed.get(s, '-')}{stored.get(s, '-')}" for s in span)
        fingerprint = hashlib.sha1(digest.encode()).hexdigest()
        key = f"{trigger}:{record.name}:{first}-{last}:{fingerprint}"
        requests.append(range_request(record.name, first, last, key, trigger))
    return requests, entry
