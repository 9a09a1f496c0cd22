"""Backfills launched through the webserver's GraphQL API, so they appear in the UI exactly
like backfills launched there (and run through the daemon)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import httpx
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION

from ingest_assets.partitions import partition_key

PIPELINE_ASSETS = ("raw_documents", "chunks", "embeddings")


class BackfillError(Exception):
    pass


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


def launch_backfill(url: str, partitions: Sequence[str], title: str) -> str:
    """Launch a backfill of the pipeline's assets over `partitions`; returns its id."""
    params = {
        "assetSelection": [{"path": [asset]} for asset in PIPELINE_ASSETS],
        "partitionNames": list(partitions),
        "title": title,
    }
    try:
        response = httpx.post(
            url.rstrip("/") + "/graphql",
            json={
                "query": LAUNCH_PARTITION_BACKFILL_MUTATION,
                "variables": {"backfillParams": params},
            },
            timeout=60,
        )
        response.raise_for_status()
    except httpx.HTTPError as err:
        raise BackfillError(f"cannot reach the Dagster webserver at {url}: {err}") from err
    body = response.json()
    if body.get("errors"):
        raise BackfillError(f"the webserver refused the backfill: {body['errors'][0]['message']}")
    result = body["data"]["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise BackfillError(f"backfill not launched: {result.get('message', result['__typename'])}")
    return str(result["backfillId"])
