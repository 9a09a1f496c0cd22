"""Two `ingest run` processes and a change-sensor run over the same source at once share the
embedded PostgreSQL, take turns per shard, and leave no duplicate rows; each document is new
to exactly one of the three writers."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from benchmarks.corpus import generate_corpus
from ingest_assets.database import Database, embedded_server_url
from ingest_assets.store.vectors import ensure_model_table, vector_table_name
from ingest_assets.testing.environment import isolated_environment
from ingest_assets_tests.conftest import REPO_ROOT


def test_concurrent_runs_over_the_same_shards_do_not_duplicate_anything(tmp_path: Path):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, documents=150, seed=5)
    home = tmp_path / "home"
    env = isolated_environment(
        INGEST_HOME=str(home),
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS="8",
    )
    # Start the shared server first, as `ingest dev` would, so both runs join it.
    url = embedded_server_url(home / "pg")
    command = [sys.executable, "-m", "ingest_assets.cli", "run", str(corpus), "--name", "docs"]
    sensor = [sys.executable, "-m", "ingest_assets_tests.sensor_run", str(corpus)]

    def start(each: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            each, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    # The sensor sees every document as new before either run starts, so its runs really
    # write beside theirs.
    third = start(sensor)
    assert third.stdout is not None
    requested = third.stdout.readline()
    assert requested.startswith("requested: ") and int(requested.split()[1]) >= 1, requested
    runs = [start(command), start(command), third]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-2000:]

    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO ingest, public")
        documents = conn.execute(
            "SELECT count(*), count(DISTINCT doc_id) FROM documents"
        ).fetchone()
        chunks = conn.execute(
            "SELECT count(*), count(DISTINCT (document_id, ordinal)), count(DISTINCT text_hash) "
            "FROM chunks"
        ).fetchone()
        vectors = conn.execute(
            f"SELECT count(*) FROM {vector_table_name('hashing-384')}"
        ).fetchone()
    assert documents == (150, 150)
    assert chunks[0] == chunks[1]
    assert vectors[0] == chunks[2]
    new_counts = [int(_field(stderr, "new,")) for _, stderr in outputs[:2]]
    sensor_new = int(outputs[2][0].split("new: ")[1])
    assert sum(new_counts) + sensor_new == 150  # each document is new to exactly one run


def _field(stderr: str, marker: str) -> str:
    """The number just before `marker` in the closing summary ("documents 150 new, ...")."""
    before = " ".join(stderr.split()).split(f" {marker}")[0]
    return before.rsplit(" ", 1)[-1]


def test_runs_registering_a_new_model_at_once_all_get_its_table(db: Database):
    """Shard runs of a first ingestion register the model at the same moment; none may fail on
    the race (CI once saw one fail on the table-name key)."""
    db.migrate()
    barrier = threading.Barrier(8)

    def register(model: str) -> str:
        with db.connect() as conn:
            barrier.wait(timeout=30)
            return ensure_model_table(conn, model, 384)

    for attempt in range(5):
        model = f"race-{attempt}"
        with ThreadPoolExecutor(8) as pool:
            tables = list(pool.map(register, [model] * 8))
        assert tables == [vector_table_name(model)] * 8
    with db.connect() as conn:
        rows = conn.execute("SELECT count(*) FROM embedding_models").fetchone()
    assert rows == (5,)
