"""Partitioning of every pipeline asset: source (dynamic) × shard (static hash bucket).

Dagster orders multi-partition keys by dimension name, so the shard dimension is named
`source_shard`: it sorts after `source`, and one source's shards form a contiguous key range
("docs|0000" ... "docs|0063") that a single ranged run or backfill batch can cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from ingest_assets.lib.hashing import shard_key

SOURCES_PARTITIONS_NAME = "sources"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SOURCE_TAG = "ingest/source"
TRIGGER_TAG = "ingest/trigger"
SOURCE_DIMENSION = "source"
SHARD_DIMENSION = "source_shard"

sources_partitions = dg.DynamicPartitionsDefinition(name=SOURCES_PARTITIONS_NAME)


def build_partitions(shards: int) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            SOURCE_DIMENSION: sources_partitions,
            SHARD_DIMENSION: dg.StaticPartitionsDefinition([shard_key(s) for s in range(shards)]),
        }
    )


def partition_key(source: str, shard: int) -> str:
    return str(dg.MultiPartitionKey({SOURCE_DIMENSION: source, SHARD_DIMENSION: shard_key(shard)}))


def range_tags(source: str, first: int, last: int, trigger: str) -> dict[str, str]:
    """The tags of a run over shards first..last of `source`, whichever path requests it."""
    return {
        RANGE_START: partition_key(source, first),
        RANGE_END: partition_key(source, last),
        SOURCE_TAG: source,
        TRIGGER_TAG: trigger,
    }


def source_range(source: str, shards: int) -> tuple[str, str]:
    """First and last partition key of all of a source's shards."""
    return partition_key(source, 0), partition_key(source, shards - 1)


def shards_by_source(keys: Sequence[str]) -> dict[str, list[int]]:
    """Group a step's partition keys ("source|0007") into shard numbers per source."""
    grouped: dict[str, list[int]] = {}
    for key in keys:
        source, shard = str(key).split("|")
        grouped.setdefault(source, []).append(int(shard))
    return grouped
