"""Evaluating the project's sensors in tests, against a real instance and database."""

from __future__ import annotations

import dagster as dg

from ingest_assets.definitions import build_definitions, build_resources
from ingest_assets.settings import IngestSettings

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def evaluate(
    settings: IngestSettings, instance: dg.DagsterInstance, name: str, cursor: str | None = None
) -> dg.SensorResult:
    defs = build_definitions(settings)
    sensor = next(s for s in defs.sensors if s.name == name)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"postgres": build_resources(settings)["postgres"]},
    )
    return sensor(context)


def requested_shards(result: dg.SensorResult) -> set[int]:
    """Every shard the result's run requests cover."""
    shards: set[int] = set()
    for request in result.run_requests or []:
        first = int(request.tags[RANGE[0]].split("|")[1])
        last = int(request.tags[RANGE[1]].split("|")[1])
        shards |= set(range(first, last + 1))
    return shards
