"""The fan-out plan on the Dagster paths, through a real `ingest dev`: a large new source is
ingested by the sources sensor as the plan's shard-range runs (side by side in the run queue,
every run started by the code server's forkserver), a file saved in the watched folder is
searchable within seconds through the notify sensor, long before the change sensor's poll, and
`ingest run --url` submits the same plan's runs to the deployment's queue (and stops them on
Ctrl-C).
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_assets import fanout
from ingest_assets.lib.hashing import shard_of
from ingest_assets_tests.e2e.conftest import (
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

SHARDS = 16
DOCUMENTS = fanout.LARGE_SOURCE_DOCUMENTS + 200  # large enough to be fanned out
SENSOR_INTERVAL_S = 600  # the change sensor's poll cannot be what picks the edit up
FRESHNESS_BOUND_S = 60  # generous: the benchmark measures it (p50 ~5 s)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("fanout")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(DOCUMENTS):
        (corpus / f"note-{i:05d}.md").write_text(f"# Note {i}\n\nword{i} appears here only.\n")
    env = stack_env(
        root / "home",
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS=str(SHARDS),
        INGEST_SENSOR_INTERVAL_S=str(SENSOR_INTERVAL_S),
    )
    with running_stack(env, root / "dev.log", corpus) as stack:
        yield stack


def test_a_large_new_source_is_ingested_as_the_plans_runs(stack: Stack):
    stack.cli("source", "add", SOURCE, str(stack.corpus))
    planned = fanout.first_ingestion(SHARDS, DOCUMENTS)
    assert len(planned) > 1

    stack.wait_for(
        "every planned run to be requested",
        lambda: len(stack.runs()) >= len(planned) or None,
        timeout=120,
    )
    runs = stack.wait_idle(timeout=600)

    first = [r for r in runs if tag(r, "ingest/trigger") == "new"]
    ranges = sorted((tag(r, RANGE_START), tag(r, RANGE_END)) for r in first)
    assert ranges == [(partition_key(a, SOURCE), partition_key(b, SOURCE)) for a, b in planned]
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    assert {tag(r, "dagster/sensor_name") for r in first} == {"sources_sensor"}
    stack.assert_every_partition_materialised(SHARDS)
    # Side by side: some run started before another had ended.
    spans = sorted((r["startTime"], r["endTime"]) for r in first)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    report(
        f"{len(first)} runs for {DOCUMENTS} documents in "
        f"{max(e for _, e in spans) - min(s for s, _ in spans):.1f}s"
    )
    counts = stack.sql(
        "SELECT count(*), count(*) FILTER (WHERE chunked_hash = content_hash) FROM documents"
    )
    assert counts == [[DOCUMENTS, DOCUMENTS]]


def test_a_file_saved_in_the_folder_is_searchable_within_seconds(stack: Stack):
    known = {r["runId"] for r in stack.runs()}
    assert stack.search("freshsaved words", k=1)[0]["doc_id"] != "fresh.md"
    (stack.corpus / "fresh.md").write_text("# Fresh\n\nfreshsaved words, just now.\n")
    saved = time.monotonic()

    def found() -> bool | None:
        hits = stack.search("freshsaved words", k=1)
        return True if hits and hits[0]["doc_id"] == "fresh.md" else None

    stack.wait_for("the saved file to be searchable", found, FRESHNESS_BOUND_S, interval=1.0)
    report(f"saved -> searchable in {time.monotonic() - saved:.1f}s")
    (run,) = [r for r in stack.runs() if r["runId"] not in known]
    assert tag(run, "ingest/trigger") == "notify"
    shard = partition_key(shard_of("fresh.md", SHARDS))
    assert (tag(run, RANGE_START), tag(run, RANGE_END)) == (shard, shard)


def test_ingest_run_beside_ingest_dev_shows_its_runs_in_the_ui_with_their_tags(stack: Stack):
    folder = stack.corpus.parent / "more"
    folder.mkdir()
    for i in range(DOCUMENTS):
        (folder / f"more-{i:05d}.md").write_text(f"# More {i}\n\nmoreword{i} only here.\n")
    known = {r["runId"] for r in stack.runs()}

    stack.cli("run", str(folder), "--name", "more")

    runs = [r for r in stack.runs() if r["runId"] not in known]
    planned = fanout.first_ingestion(SHARDS, DOCUMENTS, fanout.RUNS_AT_ONCE)
    ranges = sorted((tag(r, RANGE_START), tag(r, RANGE_END)) for r in runs)
    assert ranges == [(partition_key(a, "more"), partition_key(b, "more")) for a, b in planned]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    assert {tag(r, "ingest/trigger") for r in runs} == {"cli"}
    assert {tag(r, "ingest/source") for r in runs} == {"more"}
    (batch,) = {tag(r, "ingest/cli_batch") for r in runs}
    assert batch


def folder_of_notes(stack: Stack, name: str) -> Path:
    folder = stack.corpus.parent / name
    folder.mkdir()
    for i in range(DOCUMENTS):
        (folder / f"{name}-{i:05d}.md").write_text(f"# {name} {i}\n\n{name}word{i} only.\n")
    return folder


def batch_runs(stack: Stack, known: set[str]) -> list[dict]:
    return [r for r in stack.runs() if r["runId"] not in known and tag(r, "ingest/cli_batch")]


def test_ingest_run_with_url_submits_the_plans_runs_to_the_deployments_queue(stack: Stack):
    folder = folder_of_notes(stack, "queued")
    known = {r["runId"] for r in stack.runs()}

    result = stack.cli("run", str(folder), "--name", "queued", "--url", str(stack.client.base_url))

    assert "submitted to the Dagster deployment" in result.stderr
    assert f"documents {DOCUMENTS} new" in " ".join(result.stderr.split())
    runs = batch_runs(stack, known)
    planned = fanout.first_ingestion(SHARDS, DOCUMENTS, fanout.RUNS_AT_ONCE)
    ranges = sorted((tag(r, RANGE_START), tag(r, RANGE_END)) for r in runs)
    assert ranges == [(partition_key(a, "queued"), partition_key(b, "queued")) for a, b in planned]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    assert {tag(r, "ingest/trigger") for r in runs} == {"cli"}
    # Launched by the daemon from the run queue, not forked by the command.
    for run in runs:
        assert stack.run_pids(run["runId"]).get("Started process for run"), run
    done = stack.sql(
        "SELECT count(*) FROM documents WHERE source = 'queued' AND chunked_hash = content_hash"
    )
    assert done == [[DOCUMENTS]]


def test_ctrl_c_of_ingest_run_with_url_stops_the_runs_it_submitted(stack: Stack):
    folder = folder_of_notes(stack, "stopped")
    known = {r["runId"] for r in stack.runs()}
    command = [sys.executable, "-m", "ingest_assets.cli", "run", str(folder)]
    command += ["--name", "stopped", "--url", str(stack.client.base_url)]
    # More runs than the queue starts at once: some are still queued when the signal comes
    # (the plan's 3 runs of these one-line notes can all end before the stop reaches them).
    command += ["--ranges", str(4 * fanout.RUNS_AT_ONCE)]
    process = subprocess.Popen(
        command, env=stack.env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        stack.wait_for(
            "a submitted run to start",
            lambda: any(r["status"] == "STARTED" for r in batch_runs(stack, known)) or None,
            timeout=120,
            interval=0.2,
        )
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "interrupted (SIGINT)" in stderr and "stored so far" in stderr, stderr
    runs = batch_runs(stack, known)
    assert runs and all(r["status"] in ("SUCCESS", "CANCELED") for r in runs), runs
    assert "CANCELED" in {r["status"] for r in runs}
    # The next run finishes the job.
    stack.cli("run", "stopped", "--url", str(stack.client.base_url))
    done = stack.sql(
        "SELECT count(*) FROM documents WHERE source = 'stopped' AND chunked_hash = content_hash"
    )
    assert done == [[DOCUMENTS]]
