"""The one fan-out plan: which shard ranges become runs, in what order, and how many at once.

Every path that materialises shards follows it: the sources sensor's first run of a new source,
the changes sensor, `ingest run`, and backfills (through the assets' backfill policy, which is
how a backfill launched from the UI is cut into runs). Dagster's run queue
(`concurrency.runs.max_concurrent_runs` in dagster.yaml) and the `embedding_api` pool then
decide when each run starts; `ingest run` keeps the same bound with its `--parallel`.

Why ranges and not one run per source: a run's stages run one after another (listing and
extraction, chunking, embedding), so a single run leaves the embedding server idle while it
extracts. Several runs over disjoint ranges drift out of step, one embedding while the next
extracts. Each run has a fixed cost (a process, Dagster's events, one listing of the source),
so a small source, or one with little to do, stays one run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable

from ingest_assets.sources import Source, SourceReadError, SourceRecord, open_source

# A first ingestion of fewer documents than this is one run: its fixed costs would outweigh
# the overlap (measured: a no-change re-run of 100,000 documents took 15 s as one run, 19-22 s
# as two).
LARGE_SOURCE_DOCUMENTS = 1000
# Runs at once that the plan is cut for: one per core, and one more that waits on the
# embedding server. `ingest run --parallel` defaults to it, and the run queue's cap
# (max_concurrent_runs in dagster.yaml) is the same 3 on this project's 2-core machines.
RUNS_AT_ONCE = (os.cpu_count() or 1) + 1
# Ranges per run slot for a large first ingestion: enough that runs drift out of step.
RANGES_PER_SLOT = 4
# A range per this many documents, at least one per run slot: a smaller source gets fewer
# ranges, as each run's start and steps cost about the same whatever its size (measured at
# 2,000 documents: 4 ranges 18.5-18.8 s, 12 ranges 21.0-21.5 s).
DOCUMENTS_PER_RANGE = 500
# The first and last ranges are smaller (sizes ramp 1, 2, ... RAMP ... 2, 1): embedding starts
# after a short first extraction, and the last extraction, which nothing overlaps, is short.
RAMP = 4
# The most shards one run covers on any path: the backfill policy's max_partitions_per_run.
# 64 shards (the default) make a backfill of one source 8 runs, three at a time.
SHARDS_PER_RUN = 8

ShardRange = tuple[int, int]  # first and last shard, inclusive


def shard_ranges(shards: int, parts: int, ramp: int = 1) -> list[ShardRange]:
    """`parts` contiguous, disjoint ranges covering 0..shards-1, sized in proportion to
    1, 2, ... ramp, ..., ramp, ... 2, 1 (equal sizes for ramp 1)."""
    parts = max(1, min(parts, shards))
    weights = [max(1, min(i + 1, parts - i, ramp)) for i in range(parts)]
    total = sum(weights)
    cumulative = list(itertools.accumulate(weights, initial=0))
    bounds = [shards * c // total for c in cumulative]
    # Every range keeps at least one shard (weights round down to nothing on few shards).
    for i in range(1, parts + 1):
        bounds[i] = max(bounds[i], bounds[i - 1] + 1)
    for i in range(parts - 1, -1, -1):
        bounds[i] = min(bounds[i], bounds[i + 1] - 1)
    return [(bounds[i], bounds[i + 1] - 1) for i in range(parts)]


def first_ingestion(
    shards: int, documents: int, runs_at_once: int = RUNS_AT_ONCE
) -> list[ShardRange]:
    """Ranges for a source's first ingestion, in the order to start them. `documents` may be
    a lower bound (see `count_documents`)."""
    if documents < LARGE_SOURCE_DOCUMENTS or runs_at_once <= 1:
        return [(0, shards - 1)]
    parts = max(runs_at_once, documents // DOCUMENTS_PER_RANGE)
    return shard_ranges(shards, min(parts, RANGES_PER_SLOT * runs_at_once), ramp=RAMP)


def changed(shards: Iterable[int]) -> list[ShardRange]:
    """Ranges for an incremental run: the changed shards' contiguous runs, none longer than
    SHARDS_PER_RUN (a change that touches every shard is then split as a backfill is)."""
    ranges: list[ShardRange] = []
    for shard in sorted(set(shards)):
        if ranges and shard == ranges[-1][1] + 1 and shard - ranges[-1][0] < SHARDS_PER_RUN:
            ranges[-1] = (ranges[-1][0], shard)
        else:
            ranges.append((shard, shard))
    return ranges


def count_documents(source: Source, limit: int) -> int:
    """The source's documents, counted from its own listing up to `limit` (all the plan
    needs to know)."""
    return sum(1 for _ in itertools.islice(source.list_documents(), limit))


def most_documents(runs_at_once: int = RUNS_AT_ONCE) -> int:
    """Documents beyond which the plan no longer changes: what a source's count stops at."""
    return max(LARGE_SOURCE_DOCUMENTS, DOCUMENTS_PER_RANGE * RANGES_PER_SLOT * runs_at_once)


def for_new_source(
    record: SourceRecord,
    shards: int,
    runs_at_once: int = RUNS_AT_ONCE,
    warn: Callable[[str], object] | None = None,
) -> list[ShardRange]:
    """`first_ingestion` for a source, sized by a capped count of its own listing. A source
    that cannot be listed gets one run, whose failure then names the cause."""
    try:
        with contextlib.closing(open_source(record)) as source:
            documents = count_documents(source, most_documents(runs_at_once))
    except (SourceReadError, ValueError, OSError) as err:
        if warn is not None:
            warn(f"{record.name}: cannot count its documents ({err}); one run")
        documents = 0
    return first_ingestion(shards, documents, runs_at_once)
