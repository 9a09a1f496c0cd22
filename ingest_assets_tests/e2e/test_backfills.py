"""`ingest backfill` end to end: real Dagster backfills (GraphQL launchPartitionBackfill, run by
the daemon of `ingest dev`) against the fake embedding server over HTTP.

Each test has its own INGEST_HOME and stack. The sensors are stopped (GraphQL stopSensor)
before the source exists and the source is created with `ingest run`, so every run that
touches the corpus after that is a run of the backfill under test: no sensor run races it.

1. An embedding outage in the middle of a backfill: the partitions of the run that finished
   before the outage stay materialised, those of the run it hit fail; `ingest backfill
   --failed` relaunches exactly those, and embeds exactly the texts that still lack a vector.
2. A model change: after `ingest dev` restarts with another model, the embeddings partitions
   are stale (the chunks are not); `ingest backfill --all` fills the new model's table while
   the old one stays searchable and unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest_assets import fanout
from ingest_assets.lib.hashing import shard_of
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig
from ingest_assets_tests.e2e.conftest import (
    ASSETS,
    BACKFILL_TAG,
    BACKFILL_TERMINAL,
    CHECKS,
    RANGE_END,
    RANGE_START,
    SENSORS,
    SOURCE,
    TERMINAL,
    Stack,
    partition_key,
    report,
    running_stack,
    stack_env,
    tag,
)

pytestmark = pytest.mark.slow

BATCH = 4  # texts per embedding request
PROBE_TEXTS = 2  # an embedding step that has work asks the dimension twice, one text each
EMBEDDING_POOL = "embedding_api"

SET_POOL_LIMIT = """
mutation Limit($key: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $key,
    limit: $limit) }
"""
STALE_QUERY = """
query Stale($path: [String!]!, $partitions: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      staleStatusByPartition(partitions: $partitions)
      staleCausesByPartition(partitions: $partitions) {
        key { path } partitionKey category reason } } } }
"""


def fake_server_env(home: Path, server: FakeEmbeddingServer, model: str, shards: int):
    return stack_env(
        home,
        INGEST_EMBEDDING_PROVIDER="openai",
        INGEST_EMBEDDING_URL=server.url,
        INGEST_EMBEDDING_MODEL=model,
        INGEST_EMBEDDING_MAX_ATTEMPTS="2",
        INGEST_EMBEDDING_BACKOFF_S="0.05",
        INGEST_EMBEDDING_TIMEOUT_S="2",
        # One request in flight per step, four texts each: a request never waits behind
        # another one at the server, so none times out (2 s) while the server still answers
        # it, which would embed its texts twice.
        INGEST_EMBEDDING_BATCH_SIZE=str(BATCH),
        INGEST_EMBEDDING_CONCURRENCY="1",
        INGEST_SHARDS=str(shards),
        INGEST_SENSOR_INTERVAL_S="5",
    )


def stop_sensors(stack: Stack) -> None:
    for name in SENSORS:
        stack.stop_sensor(name)


def launch_backfill(stack: Stack, which: str, *options: str) -> str:
    result = stack.cli("backfill", SOURCE, which, *options, "--url", str(stack.client.base_url))
    backfill_id = result.stdout.strip()
    assert backfill_id and len(backfill_id.split()) == 1, result.stdout
    return backfill_id


def wait_backfill_runs_ended(
    stack: Stack, backfill_id: str, runs: int, timeout: float
) -> list[dict[str, Any]]:
    """The backfill has launched `runs` runs and each has ended (the backfill's own status is
    only updated by the daemon's next iteration, up to 30 s later: checked at the end)."""

    def ended() -> list[dict[str, Any]] | None:
        found = stack.backfill(backfill_id)["runs"]
        if len(found) >= runs and all(r["status"] in TERMINAL for r in found):
            return found
        return None

    found = stack.wait_for(f"the runs of backfill {backfill_id}", ended, timeout, interval=0.5)
    assert len(found) == runs, [(tag(r, RANGE_START), tag(r, RANGE_END)) for r in found]
    return found


def run_range(run: dict[str, Any]) -> list[str]:
    first, last = tag(run, RANGE_START), tag(run, RANGE_END)
    assert first and last, run["tags"]
    return [partition_key(s) for s in range(int(first[-4:]), int(last[-4:]) + 1)]


def partition_stats(stack: Stack) -> dict[str, dict[str, int]]:
    return {asset: stack.asset_node(asset)["partitionStats"] for asset in ASSETS}


def assert_latest_checks_passed(stack: Stack, run_id: str, assets: Sequence[str] = ASSETS) -> None:
    """The checks of `assets` (those the run materialised) last ran in `run_id` and passed."""
    for asset, check in (c for c in CHECKS if c[0] in assets):
        executions = stack.check_executions(asset, check)
        assert executions, (asset, check)
        newest = max(executions, key=lambda e: e["timestamp"])
        assert newest["runId"] == run_id, (check, newest)
        assert newest["status"] == "SUCCEEDED" and newest["evaluation"]["success"], (check, newest)


def wait_backfill_status(stack: Stack, backfill_id: str, timeout: float = 75) -> str:
    """The backfill's final status (the daemon sets it in the iteration after its runs end)."""

    def final() -> str | None:
        status = stack.backfill(backfill_id)["status"]
        return status if status in BACKFILL_TERMINAL else None

    return stack.wait_for(f"backfill {backfill_id} to reach a final status", final, timeout)


# -- 1. an embedding outage during a backfill --------------------------------------------------

# The backfill policy puts up to SHARDS_PER_RUN (8) contiguous shard keys in one run, so with
# 8 shards a backfill of the source is a single run whose embeddings step covers every shard:
# an outage fails all of them at once. 16 shards give two runs of 8, one before the outage,
# one in it.
OUTAGE_SHARDS = 2 * fanout.SHARDS_PER_RUN
HALF = OUTAGE_SHARDS // 2
DOCS_PER_HALF = 20
SHARED_PAIRS = 3


def outage_corpus() -> dict[str, str]:
    """DOCS_PER_HALF documents in each half of the shards, each with its own text,
    plus SHARED_PAIRS pairs of identical files (same name, so the same title and embedding
    input) whose two copies fall in different halves: one text, two chunks, one vector."""
    corpus: dict[str, str] = {}
    halves = [0, 0]
    n = 0
    while min(halves) < DOCS_PER_HALF:
        doc_id = f"notes/n{n:03d}.txt"
        half = shard_of(doc_id, OUTAGE_SHARDS) // HALF
        if halves[half] < DOCS_PER_HALF:
            halves[half] += 1
            corpus[doc_id] = f"Note {n} is about subject{n} with keyword{n * 7 + 3}.\n"
        n += 1
    pairs = 0
    n = 0
    while pairs < SHARED_PAIRS:
        a, b = f"mirror-a/shared{n}.txt", f"mirror-b/shared{n}.txt"
        if shard_of(a, OUTAGE_SHARDS) // HALF != shard_of(b, OUTAGE_SHARDS) // HALF:
            text = f"Shared text {n} is kept in two folders, about common{n}.\n"
            corpus[a] = corpus[b] = text
            pairs += 1
        n += 1
    return corpus


@pytest.fixture
def slow_server() -> Iterator[FakeEmbeddingServer]:
    # 1 s per request of four texts: an embedding step of ~23 texts takes ~6 s.
    with FakeEmbeddingServer(FakeServerConfig(per_item_ms=250)) as server:
        yield server


def test_outage_during_backfill_then_backfill_failed_embeds_only_what_is_missing(
    tmp_path: Path, slow_server: FakeEmbeddingServer
):
    server = slow_server
    started = time.monotonic()
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    env = fake_server_env(tmp_path / "home", server, "fake-384", OUTAGE_SHARDS)
    table = vector_table_name("fake-384")
    with running_stack(env, tmp_path / "dev.log", corpus_dir) as stack:
        stop_sensors(stack)
        # One embedding step at a time (the operator's pool limit, set through the API): the
        # two runs of the backfill embed one after the other, so the outage can come after
        # the first has finished and while the second is embedding.
        assert stack.graphql(SET_POOL_LIMIT, key=EMBEDDING_POOL, limit=1)["setConcurrencyLimit"]
        stack.cli("run", str(corpus_dir), "--name", SOURCE)  # the source, still empty
        corpus = outage_corpus()
        for doc_id, text in corpus.items():
            (corpus_dir / doc_id).parent.mkdir(parents=True, exist_ok=True)
            (corpus_dir / doc_id).write_text(text)
        server.reset_stats()

        clock = time.monotonic()
        first_backfill = launch_backfill(stack, "--all")
        assert stack.backfill(first_backfill)["numPartitions"] == OUTAGE_SHARDS
        url = str(stack.client.base_url)
        again = stack.cli("backfill", SOURCE, "--all", "--url", url, check=False)
        assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
        assert f"backfill {first_backfill}" in again.stderr and "nothing launched" in again.stderr

        def run_with_all_vectors() -> dict[str, Any] | None:
            for run in stack.backfill(first_backfill)["runs"]:
                assert run["status"] != "FAILURE", f"a run failed before the outage: {run}"
                embedded = {
                    p for a, p in stack.run_materializations(run["runId"]) if a == "embeddings"
                }
                if embedded and embedded == set(run_range(run)):
                    return run
            return None

        done = stack.wait_for(
            "a backfill run with every embeddings partition materialised",
            run_with_all_vectors,
            timeout=150,
            interval=0.25,
        )
        before_second = server.stats()["texts_embedded"]
        # The other run's step holds the pool now; stop the server once its probe and first
        # batch are in, while it still has more than a batch to embed.
        stack.wait_for(
            "the second run's embedding step to store its first batch",
            lambda: server.stats()["texts_embedded"] >= before_second + PROBE_TEXTS + BATCH or None,
            timeout=60,
            interval=0.2,
        )
        server.stop()
        outage_at = time.monotonic() - clock

        runs = wait_backfill_runs_ended(stack, first_backfill, runs=2, timeout=150)
        first_backfill_s = time.monotonic() - clock
        by_status = {r["status"]: r for r in runs}
        assert set(by_status) == {"SUCCESS", "FAILURE"}, runs
        assert by_status["SUCCESS"]["runId"] == done["runId"]
        failed_keys = run_range(by_status["FAILURE"])
        succeeded_keys = run_range(done)
        assert sorted(failed_keys + succeeded_keys) == [
            partition_key(s) for s in range(OUTAGE_SHARDS)
        ]

        # Dagster's view: the stages before the embeddings did all shards; the embeddings
        # of the run that the outage hit are FAILED, the other run's are materialised.
        stats = partition_stats(stack)
        for asset in ("raw_documents", "chunks"):
            assert (stats[asset]["numMaterialized"], stats[asset]["numFailed"]) == (
                OUTAGE_SHARDS,
                0,
            ), stats
        assert stats["embeddings"]["numFailed"] == HALF, stats
        assert stats["embeddings"]["numMaterialized"] == HALF, stats
        failed_shards = [k.split("|")[1] for k in failed_keys]
        assert stack.shards_with("embeddings", "failedPartitions") == failed_shards
        assert stack.shards_with("embeddings") == [k.split("|")[1] for k in succeeded_keys]

        # What the database holds: every vector of the finished run, and the first batches of
        # the failed one (kept, not rolled back), but not everything.
        succeeded_shards = [int(k[-4:]) for k in succeeded_keys]
        distinct, chunks, succeeded_distinct, vectors_before = stack.sql(
            f"SELECT count(DISTINCT c.text_hash), count(*), count(DISTINCT c.text_hash) "
            f"FILTER (WHERE d.shard BETWEEN %s AND %s), (SELECT count(*) FROM {table}) "
            "FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.source = %s AND d.deleted_at IS NULL",
            succeeded_shards[0],
            succeeded_shards[-1],
            SOURCE,
        )[0]
        assert (distinct, chunks) == (len(set(corpus.values())), len(corpus))
        assert succeeded_distinct + BATCH <= vectors_before < distinct, (
            succeeded_distinct,
            vectors_before,
            distinct,
        )
        row = stack.status()[SOURCE]
        assert row["chunks_with_vector"] < row["chunks"] == chunks
        # every_chunk_has_a_vector looks at every chunk, not the run's partitions: in the
        # run that succeeded it saw the other run's chunks without vectors (reported only).
        verdicts = {
            e["runId"]: (e["evaluation"] or {}).get("success")
            for e in stack.check_executions("embeddings", "every_chunk_has_a_vector")
        }
        report(f"every_chunk_has_a_vector in the successful run: {verdicts.get(done['runId'])}")

        report(
            f"outage backfill: {len(corpus)} documents ({distinct} distinct texts) in "
            f"{OUTAGE_SHARDS} shards, runs {succeeded_keys[0]}.. SUCCESS and "
            f"{failed_keys[0]}.. FAILURE; server stopped {outage_at:.1f}s after the launch; "
            f"runs ended after {first_backfill_s:.1f}s; {vectors_before}/{distinct} vectors kept"
        )

        # -- recovery ------------------------------------------------------------------------
        server.restart()  # counters from zero
        clock = time.monotonic()
        second_backfill = launch_backfill(stack, "--failed")
        assert sorted(stack.backfill(second_backfill)["partitionNames"]) == failed_keys
        (recovery,) = wait_backfill_runs_ended(stack, second_backfill, runs=1, timeout=150)
        second_backfill_s = time.monotonic() - clock
        assert recovery["status"] == "SUCCESS", recovery
        assert run_range(recovery) == failed_keys
        assert tag(recovery, BACKFILL_TAG) == second_backfill
        sent = server.stats()  # before any search: a query is embedded by the server too

        # No text embedded twice: after the restart the server embedded exactly the texts
        # that had no vector, once each, plus the one step's two dimension probes.
        vectors_after = stack.sql(f"SELECT count(*) FROM {table}")[0][0]
        assert vectors_after == distinct
        assert sent["texts_embedded"] == distinct - vectors_before + PROBE_TEXTS, sent
        assert sent["distinct_texts"] == sent["texts_embedded"], sent

        stats = partition_stats(stack)
        for asset in ASSETS:
            assert stats[asset] == {
                "numMaterialized": OUTAGE_SHARDS,
                "numPartitions": OUTAGE_SHARDS,
                "numFailed": 0,
                "numMaterializing": 0,
            }, (asset, stats[asset])
            assert stack.shards_with(asset, "failedPartitions") == []
        assert_latest_checks_passed(stack, recovery["runId"])
        row = stack.status()[SOURCE]
        assert row["chunks_with_vector"] == row["chunks"] == chunks
        assert row["pending_chunking"] == row["pending_embedding"] == row["quarantined"] == 0

        doc_id = next(
            d
            for d in corpus
            if d.startswith("notes/") and partition_key(shard_of(d, OUTAGE_SHARDS)) in failed_keys
        )
        n = int(doc_id[len("notes/n") : -len(".txt")])
        hits = stack.search(f"note {n} subject{n} keyword{n * 7 + 3}")
        assert hits[0]["doc_id"] == doc_id, hits

        # Nothing else ran: the `ingest run` that created the source, and the backfills' runs.
        launched = sorted((tag(r, BACKFILL_TAG) or tag(r, "ingest/trigger")) for r in stack.runs())
        assert launched == sorted(["cli", first_backfill, first_backfill, second_backfill])
        assert wait_backfill_status(stack, first_backfill) == "COMPLETED_FAILED"
        assert wait_backfill_status(stack, second_backfill) == "COMPLETED_SUCCESS"
        report(
            f"recovery backfill --failed: {len(failed_keys)} partitions in one run, ended after "
            f"{second_backfill_s:.1f}s; server embedded {sent['texts_embedded']} texts "
            f"({distinct - vectors_before} missing + {PROBE_TEXTS} probes); "
            f"test {time.monotonic() - started:.1f}s"
        )


# -- 2. a model change makes the embeddings stale -------------------------------------------

MODEL_SHARDS = 8
OLD_MODEL, NEW_MODEL = "fake-384", "fake-384-v2"
MODEL_CORPUS = {
    "astronomy/comets.md": "# Comets\n\nIcy comets grow glowing tails near perihelion.\n",
    "cooking/sourdough.md": "# Sourdough\n\nFeed the levain with rye flour every morning.\n",
    "garden/tomatoes.md": "# Tomatoes\n\nStake tomato vines and pinch the suckers weekly.\n",
    "music/violin.md": "# Violin\n\nRosin the bow before playing scales on the violin.\n",
    "music/drums.txt": "Drummers keep the backbeat with snare, kick and hi-hat.\n",
    "geology/volcanoes.md": "# Volcanoes\n\nMolten basalt magma erupts from shield volcanoes.\n",
}
QUERY, EXPECTED = "rosin bow scales violin", "music/violin.md"


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer() as server:
        yield server


def test_model_change_makes_embeddings_stale_and_backfill_fills_the_new_model(
    tmp_path: Path, server: FakeEmbeddingServer
):
    started = time.monotonic()
    corpus_dir = tmp_path / "corpus"
    for doc_id, text in MODEL_CORPUS.items():
        (corpus_dir / doc_id).parent.mkdir(parents=True, exist_ok=True)
        (corpus_dir / doc_id).write_text(text)
    home = tmp_path / "home"
    old_table, new_table = vector_table_name(OLD_MODEL), vector_table_name(NEW_MODEL)
    keys = [partition_key(s) for s in range(MODEL_SHARDS)]
    log = tmp_path / "dev.log"

    env = fake_server_env(home, server, OLD_MODEL, MODEL_SHARDS)
    with running_stack(env, log, corpus_dir) as stack:
        stop_sensors(stack)
        stack.cli("run", str(corpus_dir), "--name", SOURCE)
        for asset in ASSETS:
            assert stack.shards_with(asset) == [k[-4:] for k in keys], asset
        old_rows = stack.sql(f"SELECT count(*) FROM {old_table}")[0][0]
        row = stack.status()[SOURCE]
        assert row["chunks_with_vector"] == row["chunks"] == old_rows == len(MODEL_CORPUS)
        assert row["serving_model"] == row["building_model"] == OLD_MODEL, row

    env = fake_server_env(home, server, NEW_MODEL, MODEL_SHARDS)
    with running_stack(env, log, corpus_dir, wait_for_ticks=False) as stack:
        assert all(stack.sensor(name)["status"] == "STOPPED" for name in SENSORS)
        known = {r["runId"] for r in stack.runs()}

        def stale(asset: str) -> dict[str, Any]:
            found = stack.graphql(STALE_QUERY, path=[asset], partitions=keys)
            assert found["assetNodeOrError"]["__typename"] == "AssetNode", found
            return found["assetNodeOrError"]

        embeddings = stale("embeddings")
        assert embeddings["staleStatusByPartition"] == ["STALE"] * MODEL_SHARDS, embeddings
        causes = embeddings["staleCausesByPartition"]
        assert all(
            any(c["category"] == "CODE" and c["key"]["path"] == ["embeddings"] for c in found)
            for found in causes
        ), causes
        for asset in ("raw_documents", "chunks"):
            found = stale(asset)
            assert found["staleStatusByPartition"] == ["FRESH"] * MODEL_SHARDS, (asset, found)
        # The old model still serves (chunks_with_vector counts its vectors); the new one is
        # being built and has no vectors yet.
        row = stack.status()[SOURCE]
        assert (row["serving_model"], row["building_model"]) == (OLD_MODEL, NEW_MODEL), row
        assert row["chunks_with_vector"] == row["chunks"] == len(MODEL_CORPUS), row
        assert row["vectors_by_model"].get(NEW_MODEL, 0) == 0, row
        server.reset_stats()

        clock = time.monotonic()
        # The stale stage alone, as selecting `embeddings` in the UI does: the documents and
        # chunks are current, so the run neither lists the source nor re-chunks.
        backfill_id = launch_backfill(stack, "--all", "--stage", "embeddings")
        (run,) = wait_backfill_runs_ended(stack, backfill_id, runs=1, timeout=150)
        backfill_s = time.monotonic() - clock
        assert run["status"] == "SUCCESS", run
        assert run_range(run) == keys
        assert {asset for asset, _ in stack.run_materializations(run["runId"])} == {"embeddings"}
        assert {r["runId"] for r in stack.runs()} == known | {run["runId"]}
        sent = server.stats()
        assert sent["texts_embedded"] == len(MODEL_CORPUS) + PROBE_TEXTS, sent

        assert stale("embeddings")["staleStatusByPartition"] == ["FRESH"] * MODEL_SHARDS
        stats = partition_stats(stack)
        for asset in ASSETS:
            assert (stats[asset]["numMaterialized"], stats[asset]["numFailed"]) == (
                MODEL_SHARDS,
                0,
            ), stats
        assert_latest_checks_passed(stack, run["runId"], assets=("embeddings",))

        # The same texts in both tables; the old model's rows untouched.
        new_rows, old_rows_now, unmatched = stack.sql(
            f"SELECT (SELECT count(*) FROM {new_table}), (SELECT count(*) FROM {old_table}), "
            f"(SELECT count(*) FROM {new_table} n FULL JOIN {old_table} o USING (text_hash) "
            "WHERE n.text_hash IS NULL OR o.text_hash IS NULL)"
        )[0]
        assert (new_rows, old_rows_now, unmatched) == (old_rows, old_rows, 0)
        row = stack.status()[SOURCE]  # the backfill fills the new model; the old one serves
        assert row["serving_model"] == OLD_MODEL, row
        assert row["chunks_with_vector"] == row["chunks"] == len(MODEL_CORPUS), row
        assert row["vectors_by_model"][NEW_MODEL] == len(MODEL_CORPUS), row
        for model in (NEW_MODEL, OLD_MODEL):
            hits = stack.search(QUERY, model=model)
            assert hits[0]["doc_id"] == EXPECTED, (model, hits)
            assert hits[0]["score"] > hits[1]["score"]
        assert wait_backfill_status(stack, backfill_id) == "COMPLETED_SUCCESS"
        report(
            f"model change: {MODEL_SHARDS} embeddings partitions stale, backfill --all ended "
            f"after {backfill_s:.1f}s; {new_rows} vectors for {NEW_MODEL}, {old_rows} kept for "
            f"{OLD_MODEL}; test {time.monotonic() - started:.1f}s"
        )
