"""`ingest dev` end to end: the real Dagster daemon and webserver on the project's dagster.yaml
(PostgreSQL run/event storage in the embedded server), driven only the way a user drives it:
the `ingest` CLI, files in a folder, and the webserver's GraphQL API.

One stack for the module (its own INGEST_HOME, a free port on 127.0.0.1); the tests run in
order and build on each other: add a source, add a file, delete a file, check the checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingest_assets.lib.hashing import shard_of
from ingest_assets_tests.e2e.conftest import (
    ASSETS,
    CHECKS,
    RANGE_END,
    RANGE_START,
    SOURCE,
    Stack,
    partition_key,
    report,
    running_stack,
    stack_env,
    tag,
)

pytestmark = pytest.mark.slow

SHARDS = 4
SENSOR_INTERVAL_S = 5
ALL_SHARDS = [f"{s:04d}" for s in range(SHARDS)]

# Eight small documents; every word that matters appears in one document only, so a query
# made of a document's words finds it first with the bag-of-words hashing embedder.
CORPUS = {
    "astronomy/comets.md": "# Comets\n\nIcy comets grow glowing tails near perihelion.\n",
    "astronomy/eclipses.txt": "Lunar eclipses redden the moon inside earth's umbra.\n",
    "cooking/sourdough.md": "# Sourdough\n\nFeed the levain with rye flour every morning.\n",
    "cooking/pickles.txt": "Brine cucumbers with dill, garlic and mustard seed for pickles.\n",
    "garden/tomatoes.md": "# Tomatoes\n\nStake tomato vines and pinch the suckers weekly.\n",
    "garden/compost.txt": "Turn the compost heap so worms and fungi break down leaves.\n",
    "music/violin.md": "# Violin\n\nRosin the bow before playing scales on the violin.\n",
    "music/drums.txt": "Drummers keep the backbeat with snare, kick and hi-hat.\n",
}
ADDED_DOC = "geology/volcanoes.md"
ADDED_TEXT = "# Volcanoes\n\nMolten basalt magma erupts from shield volcanoes as lava.\n"
ADDED_QUERY = "molten basalt magma erupts shield volcanoes lava"
DELETED_DOC = "cooking/pickles.txt"
DELETED_QUERY = "brine cucumbers dill garlic mustard seed pickles"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("daemon")
    corpus = root / "corpus"
    for doc_id, text in CORPUS.items():
        (corpus / doc_id).parent.mkdir(parents=True, exist_ok=True)
        (corpus / doc_id).write_text(text)
    env = stack_env(
        root / "home",
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS=str(SHARDS),
        INGEST_SENSOR_INTERVAL_S=str(SENSOR_INTERVAL_S),
    )
    with running_stack(env, root / "dev.log", corpus) as stack:
        yield stack


def test_new_source_materialises_every_shard_within_two_ticks(stack: Stack):
    for name in ("sources_sensor", "changes_sensor"):
        assert stack.sensor(name)["status"] == "RUNNING"
    assert stack.runs() == []

    stack.cli("source", "add", SOURCE, str(stack.corpus))
    added = time.time()
    clock = time.monotonic()

    def every_shard_of_every_asset() -> bool | None:
        return all(stack.shards_with(asset) == ALL_SHARDS for asset in ASSETS) or None

    stack.wait_for("all shards of all assets materialised", every_shard_of_every_asset, 180)
    seconds = time.monotonic() - clock
    stack.state["source_add_s"] = seconds
    report(f"source add -> all {SHARDS} shards x {len(ASSETS)} assets materialised: {seconds:.1f}s")

    runs = stack.wait_idle()
    first = [r for r in runs if tag(r, "ingest/trigger") == "new"]
    assert len(first) == 1, runs
    run = first[0]
    assert run["jobName"] == "ingest_job"
    assert tag(run, "dagster/sensor_name") == "sources_sensor"
    assert (tag(run, RANGE_START), tag(run, RANGE_END)) == (partition_key(0), partition_key(3))
    assert run["status"] == "SUCCESS"
    tick = stack.requesting_tick("sources_sensor", run["runId"])
    passed = stack.ticks_between("sources_sensor", added, tick["timestamp"])
    assert len(passed) <= 1, f"the run came {len(passed) + 1} ticks after the add: {passed}"
    report(
        f"  first run requested {tick['timestamp'] - added:.1f}s after the add "
        f"(tick {len(passed) + 1} after it), ran {run['endTime'] - run['startTime']:.1f}s"
    )
    materialised = set(stack.run_materializations(run["runId"]))
    assert materialised == {(a, partition_key(s)) for a in ASSETS for s in range(SHARDS)}

    others = [r for r in runs if r is not run]
    if others:  # see the report: the changes sensor also sees the brand-new source
        report(
            "  also ran: "
            + ", ".join(
                f"{tag(r, 'dagster/sensor_name')} {tag(r, RANGE_START)}..{tag(r, RANGE_END)} "
                f"{r['status']}"
                for r in others
            )
        )
    assert all(r["status"] == "SUCCESS" for r in runs), runs

    row = stack.status()[SOURCE]
    assert row["documents"] == len(CORPUS)
    assert row["chunks"] >= len(CORPUS) and row["chunks_with_vector"] == row["chunks"]
    assert row["pending_chunking"] == row["pending_embedding"] == row["quarantined"] == 0


def requesting_sensor(run: dict[str, Any]) -> str:
    """The sensor that requested a change's run: the notify sensor (the folder watcher) or
    the change sensor's poll, whichever ticked first; never both (a sensor leaves a source
    with an unfinished run alone, then finds nothing left to do)."""
    sensor = tag(run, "dagster/sensor_name")
    trigger = {"notify_sensor": "notify", "changes_sensor": "change"}
    assert sensor in trigger, sensor
    assert tag(run, "ingest/trigger") == trigger[sensor]
    return sensor


def test_added_file_runs_only_its_shard_within_one_tick_and_is_searchable(stack: Stack):
    known = {r["runId"] for r in stack.wait_idle()}
    shard = shard_of(ADDED_DOC, SHARDS)
    path = stack.corpus / ADDED_DOC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ADDED_TEXT)
    added = time.time()
    clock = time.monotonic()

    run = stack.wait_new_run(known, timeout=60)
    sensor = requesting_sensor(run)
    assert (tag(run, RANGE_START), tag(run, RANGE_END)) == (partition_key(shard),) * 2
    tick = stack.requesting_tick(sensor, run["runId"])
    passed = stack.ticks_between(sensor, added, tick["timestamp"])
    assert passed == [], f"ticks after the file appeared that did not request its run: {passed}"

    run = stack.wait_run_ended(run["runId"])
    assert run["status"] == "SUCCESS", run
    assert set(stack.run_materializations(run["runId"])) == {
        (asset, partition_key(shard)) for asset in ASSETS
    }

    def found_first() -> list[dict[str, Any]] | None:
        hits = stack.search(ADDED_QUERY)
        return hits if hits and hits[0]["doc_id"] == ADDED_DOC else None

    hits = stack.wait_for(f"{ADDED_DOC} first in search", found_first, timeout=60, interval=2)
    seconds = time.monotonic() - clock
    stack.state["file_add_s"] = seconds
    assert hits[0]["source"] == SOURCE and hits[0]["uri"] == path.resolve().as_uri()
    assert hits[0]["score"] > hits[1]["score"]
    report(
        f"file add -> searchable: {seconds:.1f}s (run requested "
        f"{tick['timestamp'] - added:.1f}s after the write, shard {shard} only, "
        f"ran {run['endTime'] - run['startTime']:.1f}s)"
    )

    # The next tick after the run sees the index in step with the folder: no further runs.
    after = stack.wait_for(
        "a changes_sensor tick after the run ended",
        lambda: (
            [t for t in stack.ticks("changes_sensor") if t["timestamp"] > run["endTime"]] or None
        ),
        timeout=4 * SENSOR_INTERVAL_S + 10,
    )
    assert after[0]["runIds"] == [], after[0]
    assert {r["runId"] for r in stack.runs()} == known | {run["runId"]}
    assert stack.status()[SOURCE]["documents"] == len(CORPUS) + 1


def test_deleted_file_leaves_search_after_the_next_sensor_run(stack: Stack):
    before = stack.search(DELETED_QUERY)
    assert before[0]["doc_id"] == DELETED_DOC, before
    known = {r["runId"] for r in stack.wait_idle()}
    shard = shard_of(DELETED_DOC, SHARDS)

    (stack.corpus / DELETED_DOC).unlink()
    deleted = time.time()
    clock = time.monotonic()

    run = stack.wait_new_run(known, timeout=60)
    sensor = requesting_sensor(run)
    assert (tag(run, RANGE_START), tag(run, RANGE_END)) == (partition_key(shard),) * 2
    tick = stack.requesting_tick(sensor, run["runId"])
    assert stack.ticks_between(sensor, deleted, tick["timestamp"]) == []
    run = stack.wait_run_ended(run["runId"])
    assert run["status"] == "SUCCESS", run

    def gone() -> list[dict[str, Any]] | None:
        hits = stack.search(DELETED_QUERY, k=20)
        return hits if hits and DELETED_DOC not in {h["doc_id"] for h in hits} else None

    hits = stack.wait_for(f"{DELETED_DOC} gone from search", gone, timeout=60, interval=2)
    seconds = time.monotonic() - clock
    stack.state["delete_s"] = seconds
    row = stack.status()[SOURCE]
    # k=20 covers every live chunk: the document is gone, not just outranked.
    assert len(hits) == row["chunks"] < 20, [h["doc_id"] for h in hits]
    report(
        f"file delete -> gone from search: {seconds:.1f}s (run requested "
        f"{tick['timestamp'] - deleted:.1f}s after the delete, shard {shard} only)"
    )
    assert (row["documents"], row["deleted"]) == (len(CORPUS), 1)
    assert row["chunks_with_vector"] == row["chunks"]


def test_asset_checks_pass_and_no_partition_failed(stack: Stack):
    runs = stack.wait_idle()
    ingest_runs = {r["runId"] for r in runs if r["jobName"] == "ingest_job"}
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    latest = max(runs, key=lambda r: r["creationTime"])

    for asset, check in CHECKS:
        executions = stack.check_executions(asset, check)
        assert {e["runId"] for e in executions} == ingest_runs, (check, executions)
        failed = [
            e
            for e in executions
            if e["status"] != "SUCCEEDED" or not (e["evaluation"] or {}).get("success")
        ]
        assert failed == [], (check, failed)
        newest = max(executions, key=lambda e: e["timestamp"])
        assert newest["runId"] == latest["runId"]
        assert newest["evaluation"]["success"] is True
    report(f"asset checks: {len(CHECKS)} checks x {len(ingest_runs)} runs, all passed")

    stack.assert_every_partition_materialised(SHARDS)
    for asset in ASSETS:
        assert stack.shards_with(asset, "failedPartitions") == []
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in stack.state.items())
    report(f"timings: {timings}")
