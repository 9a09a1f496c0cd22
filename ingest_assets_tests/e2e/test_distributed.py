"""A backfill on a distributed stack: the code location in its own `dagster api grpc` process
(the image's command, deploy/Dockerfile), `dagster-webserver` and `dagster-daemon` loading it
through the containers' workspace file (deploy/docker/workspace.yaml, pointed at 127.0.0.1),
the project's dagster.yaml (PostgreSQL storage, a run queue of 3), and the database reached
through INGEST_DATABASE_URL / DAGSTER_PG_URL as in a deployment (here the embedded server).

The backfill of one source over 24 shards is three runs of 8 (the fan-out plan's runs of
SHARDS_PER_RUN, BackfillPolicy.multi_run(8));
the daemon dequeues them together and the code server starts each one as its own process.
The fake embedding server answers slowly enough that the runs' embedding steps overlap.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest_assets import fanout
from ingest_assets.lib.hashing import shard_of
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig
from ingest_assets_tests.e2e.conftest import (
    BACKFILL_TAG,
    CHECKS,
    RANGE_END,
    RANGE_START,
    SENSORS,
    SOURCE,
    TERMINAL,
    partition_key,
    report,
    running_distributed_stack,
    stack_env,
    tag,
    write_corpus,
)

pytestmark = pytest.mark.slow

PER_RUN = fanout.SHARDS_PER_RUN  # the backfill policy's max_partitions_per_run
SHARDS = 3 * PER_RUN
RUNS = SHARDS // PER_RUN
DOCS_PER_RUN = 8
PROBE_TEXTS = 2  # an embedding step with work asks the dimension twice, one text each
BATCH = 2  # texts per request: each run's embedding step makes ~5 requests of ~1.5 s


def corpus() -> dict[str, str]:
    """DOCS_PER_RUN documents in each run's range of shards, each with its own text."""
    found: dict[str, str] = {}
    counts = [0] * RUNS
    for n in itertools.count():
        if min(counts) == DOCS_PER_RUN:
            return found
        doc_id = f"notes/n{n:03d}.txt"
        batch = shard_of(doc_id, SHARDS) // PER_RUN
        if counts[batch] < DOCS_PER_RUN:
            counts[batch] += 1
            found[doc_id] = f"Note {n} is about subject{n} with keyword{n * 7 + 3}.\n"
    raise AssertionError("unreachable")


@pytest.fixture
def slow_server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(FakeServerConfig(base_latency_ms=1500)) as server:
        yield server


def test_backfill_runs_in_separate_processes_at_once_and_completes(
    tmp_path: Path, slow_server: FakeEmbeddingServer
):
    started = time.monotonic()
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    env = stack_env(
        tmp_path / "home",
        INGEST_EMBEDDING_PROVIDER="openai",
        INGEST_EMBEDDING_URL=slow_server.url,
        INGEST_EMBEDDING_MODEL="fake-384",
        INGEST_EMBEDDING_BATCH_SIZE=str(BATCH),
        INGEST_EMBEDDING_CONCURRENCY="1",
        INGEST_EMBEDDING_TIMEOUT_S="20",
        INGEST_SHARDS=str(SHARDS),
        INGEST_SENSOR_INTERVAL_S="5",
    )
    with running_distributed_stack(env, tmp_path, corpus_dir) as stack:
        # Every run after this point belongs to the backfill: no sensor run races it.
        for name in SENSORS:
            stack.stop_sensor(name)
        stack.cli("run", str(corpus_dir), "--name", SOURCE)  # registers the source, still empty
        documents = corpus()
        write_corpus(corpus_dir, documents)
        known = {r["runId"] for r in stack.runs()}
        slow_server.reset_stats()

        clock = time.monotonic()
        backfill_id = stack.cli(
            "backfill", SOURCE, "--all", "--url", str(stack.client.base_url)
        ).stdout.strip()
        assert stack.backfill(backfill_id)["numPartitions"] == SHARDS

        def runs_ended() -> list[dict[str, Any]] | None:
            found = stack.backfill(backfill_id)["runs"]
            if len(found) >= RUNS and all(r["status"] in TERMINAL for r in found):
                return found
            return None

        stack.wait_for(f"the {RUNS} runs of the backfill", runs_ended, timeout=240, interval=1)
        backfill_s = time.monotonic() - clock
        runs = [r for r in stack.runs() if r["runId"] not in known]
        assert len(runs) == RUNS, [(tag(r, RANGE_START), tag(r, RANGE_END)) for r in runs]
        assert all(r["status"] == "SUCCESS" for r in runs), runs
        assert all(tag(r, BACKFILL_TAG) == backfill_id for r in runs), runs
        ranges = sorted((tag(r, RANGE_START), tag(r, RANGE_END)) for r in runs)
        assert ranges == [
            (partition_key(i * PER_RUN), partition_key(i * PER_RUN + PER_RUN - 1))
            for i in range(RUNS)
        ]

        # Separate processes: the code server started each run as a process of its own
        # (its "Started process for run" engine event), which executed the run's steps; none
        # of them is the code server, the webserver, the daemon or this test.
        pids = {}
        for run in runs:
            found = stack.run_pids(run["runId"])
            (launched,) = found["Started process for run"]
            assert found["Executing steps in process"] == {launched}, found
            pids[run["runId"]] = launched
        services = {p.pid for p, _ in stack.processes.values()}
        assert len(set(pids.values())) == RUNS, pids
        assert not set(pids.values()) & services, (pids, services)

        # At once: the queue (max_concurrent_runs 3) let the runs execute side by side.
        spans = sorted((r["startTime"], r["endTime"]) for r in runs)
        overlaps = [
            min(a[1], b[1]) - max(a[0], b[0])
            for a, b in itertools.combinations(spans, 2)
            if max(a[0], b[0]) < min(a[1], b[1])
        ]
        assert overlaps, spans
        sent = slow_server.stats()

        # Complete: every shard of every stage materialised, every check passed in every run.
        stack.assert_every_partition_materialised(SHARDS)
        for asset, check in CHECKS:
            by_run = {e["runId"]: e for e in stack.check_executions(asset, check)}
            for run in runs:
                execution = by_run.get(run["runId"])
                assert execution, (check, run["runId"])
                assert execution["status"] == "SUCCEEDED", (check, execution)
                assert execution["evaluation"]["success"], (check, execution)
        row = stack.status()[SOURCE]
        assert row["documents"] == len(documents), row
        assert row["chunks_with_vector"] == row["chunks"] == len(documents), row
        # Each text embedded once, by the run of its shard, plus each step's two probes.
        assert sent["texts_embedded"] == len(documents) + RUNS * PROBE_TEXTS, sent

        def backfill_completed() -> str | None:
            status = stack.backfill(backfill_id)["status"]
            return status if status != "REQUESTED" else None

        assert stack.wait_for("the backfill's final status", backfill_completed, 75) == (
            "COMPLETED_SUCCESS"
        )
        report(
            f"distributed backfill: {len(documents)} documents in {SHARDS} shards, {RUNS} runs "
            f"in pids {sorted(pids.values())}, longest overlap {max(overlaps):.1f}s, runs ended "
            f"after {backfill_s:.1f}s; test {time.monotonic() - started:.1f}s"
        )
