"""The latest Dagster run over each source's partitions, for `ingest status`.

`ingest run` and the sensors tag their runs with the source; a backfill launched from the UI
or by `ingest backfill` carries only Dagster's partition tags, so those are looked up as well:
a few indexed queries per source, each for one row."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from ingest_assets.defs.partitions import RANGE_START, SOURCE_TAG, partition_key

TRIGGER_TAG = "ingest/trigger"
# Dagster's own run tags (documented names; its constants live in a private module).
BACKFILL_ID_TAG = "dagster/backfill"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
PARTITION_NAME_TAG = "dagster/partition"
SENSOR_NAME_TAG = "dagster/sensor_name"


@dataclass(frozen=True)
class LastRun:
    run_id: str
    status: str  # Dagster's run status: SUCCESS, FAILURE, STARTED, QUEUED, CANCELED, ...
    trigger: str  # cli, new, change, backfill, retry, sensor or manual
    created_at: float  # epoch seconds
    started_at: float | None
    ended_at: float | None

    def when(self, now: float | None = None) -> str:
        """'ended 3 min ago', 'started 20 s ago' or 'queued 1 h ago'."""
        now = time.time() if now is None else now
        if self.ended_at is not None:
            return f"ended {ago(now - self.ended_at)}"
        if self.started_at is not None:
            return f"started {ago(now - self.started_at)}"
        return f"queued {ago(now - self.created_at)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "trigger": self.trigger,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
        }


def ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def trigger_of(tags: Mapping[str, str]) -> str:
    if TRIGGER_TAG in tags:
        return tags[TRIGGER_TAG]
    if BACKFILL_ID_TAG in tags:
        return "backfill"
    if PARENT_RUN_ID_TAG in tags:
        return "retry"
    if SENSOR_NAME_TAG in tags:
        return "sensor"
    return "manual"


def last_runs(
    instance: dg.DagsterInstance, sources: Sequence[str], shards: int
) -> dict[str, LastRun | None]:
    """Each source's newest run: tagged with the source, or over a range or a single key of
    its partitions (a backfill). None for a source that has never had a run."""
    found: dict[str, LastRun | None] = {}
    for source in sources:
        keys = [partition_key(source, shard) for shard in range(shards)]
        records = [
            record
            for tags in ({SOURCE_TAG: source}, {RANGE_START: keys}, {PARTITION_NAME_TAG: keys})
            for record in instance.get_run_records(dg.RunsFilter(tags=tags), limit=1)
        ]
        if not records:
            found[source] = None
            continue
        newest = max(records, key=lambda r: r.create_timestamp)
        run = newest.dagster_run
        found[source] = LastRun(
            run_id=run.run_id,
            status=run.status.value,
            trigger=trigger_of(run.tags),
            created_at=newest.create_timestamp.timestamp(),
            started_at=newest.start_time,
            ended_at=newest.end_time,
        )
    return found
