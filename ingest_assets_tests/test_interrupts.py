"""Ctrl-C and SIGTERM during `ingest run`: real signals to real processes, in one run and in
parallel shard ranges, while extracting and while embedding. The command stops within 10 s
with exit 130 (143), says in one line what is stored, leaves no run process, lock or running
Dagster run behind, and the next run finishes exactly the missing work."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator

import psutil
import psycopg
import pytest

from ingest_assets.database import url_for_database
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig
from ingest_assets_tests.test_crash_safety import Stack, alive, wait_for

STOP_BOUND_S = 10
STORED = re.compile(r"stored so far: (\d+) documents, (\d+) chunks, (\d+) with a vector")


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    # About 500 texts/s: slow enough to be caught in the middle of embedding.
    with FakeEmbeddingServer(FakeServerConfig(per_item_ms=2.0, capacity=1)) as server:
        yield server


class Watched:
    """`ingest run` with its stderr read as it comes (progress lines, then the closing one)."""

    def __init__(self, stack: Stack, *options: str):
        self.process = stack.start(*options)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @property
    def stderr(self) -> str:
        self._reader.join(timeout=10)
        return "".join(self.lines)


def dagster(stack: Stack, query: str) -> list[tuple]:
    with psycopg.connect(url_for_database(stack.url, "dagster")) as conn:
        return conn.execute(query).fetchall()


def dagster_run_statuses(stack: Stack) -> list[str]:
    return [row[0] for row in dagster(stack, "SELECT status FROM runs")]


def advisory_locks(stack: Stack) -> int:
    return stack.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0]


@pytest.mark.parametrize(
    ("stage", "options", "signum"),
    [
        ("embedding", ("--parallel", "1"), signal.SIGINT),
        ("embedding", ("--ranges", "4", "--parallel", "3"), signal.SIGINT),
        ("documents", ("--ranges", "4", "--parallel", "3"), signal.SIGTERM),
        ("chunking", ("--parallel", "1"), signal.SIGTERM),
    ],
)
def test_an_interrupt_stops_everything_promptly_and_the_next_run_finishes(
    tmp_path, server, stage, options, signum
):
    stack = Stack(tmp_path, documents=1200, server=server)
    run = Watched(stack, *options)
    wait_for(lambda: run.saw(f"{stage}:"), 180, f"the {stage} stage")
    time.sleep(0.5)
    runs = psutil.Process(run.process.pid).children(recursive=True)

    sent = time.monotonic()
    run.process.send_signal(signum)
    run.process.wait(timeout=60)
    stopped_after = time.monotonic() - sent

    assert stopped_after <= STOP_BOUND_S
    assert run.process.returncode == 128 + signum
    stderr = " ".join(run.stderr.split())  # rich wraps the closing line
    assert "Traceback" not in stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr
    wait_for(lambda: not any(map(alive, runs)), 10, "the runs and PDF readers to end")
    wait_for(lambda: advisory_locks(stack) == 0, 10, "the shard locks to be released")
    assert "STARTED" not in dagster_run_statuses(stack)
    assert "CANCELED" in dagster_run_statuses(stack)
    # The killed runs' pool slots are given back (no daemon would): later runs are not short.
    assert dagster(stack, "SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL") == [
        (0,)
    ]
    # The line tells the truth about what the index holds.
    found = STORED.search(stderr)
    assert found, stderr[-2000:]
    documents, chunks, with_vector = map(int, found.groups())
    live = stack.query("SELECT count(*) FROM documents WHERE deleted_at IS NULL")[0]
    assert (documents, chunks) == (live, stack.query("SELECT count(*) FROM chunks")[0])
    assert with_vector <= chunks
    stack.assert_consistent(complete=False)
    stored = stack.vectors()
    server.reset_stats()

    stack.run("--parallel", "1")

    stack.assert_consistent(complete=True)
    probe = 2  # the one run's embedding step asks the dimension with two texts
    assert server.stats()["texts_embedded"] - probe == stack.vectors() - stored


def test_a_second_interrupt_ends_at_once(tmp_path, server):
    stack = Stack(tmp_path, documents=600, server=server)
    run = Watched(stack, "--ranges", "4", "--parallel", "3")
    wait_for(lambda: run.saw("embedding:"), 180, "the embedding stage")
    run.process.send_signal(signal.SIGINT)
    run.process.send_signal(signal.SIGINT)
    run.process.wait(timeout=STOP_BOUND_S)
    assert run.process.returncode == 128 + signal.SIGINT
    assert "Traceback" not in run.stderr
