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
