"""Backfills launched through the webserver's GraphQL API, so they appear in the UI exactly
like backfills launched there (and run through the daemon)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION

from ingest_assets.defs.partitions import partition_key
from ingest_assets.webserver import WebserverError, graphql

PIPELINE_ASSETS = ("raw_documents", "chunks", "embeddings")


def unfinished_partitions(instance: dg.DagsterInstance, source: str, shards: int) -> list[str]:
    """The source's partitions that any stage has never materialised, or whose latest attempt
    came after its latest materialisation (failed, or still running)."""
    keys = [partition_key(source, shard) for shard in range(shards)]
    unfinished: set[str] = set()
    storage = instance.event_log_storage
    for asset in PIPELINE_ASSETS:
        key = dg.AssetKey(asset)
        done = instance.get_materialized_partitions(key)
        attempted = (
            storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                key
            )
        )
        unfinished |= {k for k in keys if k not in done or k in attempted}
    return [k for k in keys if k in unfinished]


RUNNING_BACKFILLS_QUERY = """
{ partitionBackfillsOrError(status: REQUESTED, limit: 100) {
    __typename
    ... on PartitionBackfills { results { id title partitionNames } }
    ... on PythonError { message } } }
"""


def overlapping_backfill(url: str, partitions: Sequence[str]) -> str | None:
    """A backfill still running over some of `partitions`, described in a few words."""
    body = graphql(url, RUNNING_BACKFILLS_QUERY, {})
    found = body["partitionBackfillsOrError"]
    if found["__typename"] != "PartitionBackfills":
        raise WebserverError(f"the webserver could not list backfills: {found.get('message')}")
    wanted = set(partitions)
    for backfill in found["results"]:
        shared = wanted & set(backfill["partitionNames"] or [])
        if shared:
            title = f" ({backfill['title']})" if backfill["title"] else ""
            return f"backfill {backfill['id']}{title} is still running over {len(shared)} of them"
    return None


STAGES = ("documents", "chunks", "embeddings")  # PIPELINE_ASSETS, as the CLI names them


def stages_from(first: str) -> tuple[str, ...]:
    """The pipeline's assets from stage `first` (documents, chunks or embeddings) on."""
    return PIPELINE_ASSETS[STAGES.index(first) :]


def launch_backfill(
    url: str, partitions: Sequence[str], title: str, assets: Sequence[str] = PIPELINE_ASSETS
) -> str:
    """Launch a backfill of `assets` (the whole pipeline unless told) over `partitions`;
    returns its id."""
    params = {
        "assetSelection": [{"path": [asset]} for asset in assets],
        "partitionNames": list(partitions),
        "title": title,
    }
    body = graphql(url, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params})
    result = body["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise WebserverError(
            f"backfill not launched: {result.get('message', result['__typename'])}"
        )
    return str(result["backfillId"])
