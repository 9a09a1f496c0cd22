"""Sensors: keep the `source` partitions in step with the registry, and request runs for
shards whose documents changed. Thin: the listing and the database go through resources."""

import hashlib
import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ingest_assets.lib.fingerprints import changed_shards, contiguous_ranges, shard_digests
from ingest_assets.lib.hashing import shard_of
from ingest_assets.partitions import SOURCES_PARTITIONS_NAME, partition_key, sources_partitions
from ingest_assets.resources.postgres import PostgresResource
from ingest_assets.settings import IngestSettings
from ingest_assets.sources import SourceReadError, open_source
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
        partition_requests = []
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
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS_NAME))
        requests: list[dg.RunRequest] = []
        next_cursor: dict[str, str] = {}
        with postgres.database().connect() as conn:
            for record in list_sources(conn):
                if record.name not in known:
                    continue  # the sources sensor adds it and requests its first run
                if has_unfinished_run(context.instance, record.name):
                    # Compare again once it has finished; keep the old cursor entry.
                    if record.name in cursor:
                        next_cursor[record.name] = cursor[record.name]
                    continue
                try:
                    listed = shard_digests(
                        (ref.doc_id, shard_of(ref.doc_id, shards), ref.fingerprint)
                        for ref in open_source(record).list_documents()
                    )
                except SourceReadError as err:
                    context.log.warning(f"{record.name}: {err}")
                    continue
                listing = json.dumps(sorted(listed.items()))
                next_cursor[record.name] = listing
                if cursor.get(record.name) == listing:
                    continue  # same listing as last tick: its runs were requested then
                stored = shard_digests(document_fingerprints(conn, record.name))
                for first, last in contiguous_ranges(changed_shards(listed, stored)):
                    # Both sides of the difference: a folder that returns to an earlier
                    # listing (a file added, then deleted again) still gets a new run.
                    span = range(first, last + 1)
                    digest = "".join(f"{listed.get(s, '-')}{stored.get(s, '-')}" for s in span)
                    fingerprint = hashlib.sha1(digest.encode()).hexdigest()
                    key = f"change:{record.name}:{first}-{last}:{fingerprint}"
                    requests.append(range_request(record.name, first, last, key, "change"))
            conn.rollback()
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(next_cursor))

    return [sources_sensor, changes_sensor]
