"""The Dagster paths under `ingest dev`, timed as a user meets them: a new source picked up by
the sources sensor, a backfill after a model change, and single-file edits in a watched folder.

Times are wall clock: the fake embedding server reports when the first text arrived and when
the last was embedded; Dagster reports ticks and runs over GraphQL; "searchable" is read from
the index itself (the edited file's new words in a chunk that has a vector).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import psycopg
from psycopg import sql

from ingest_assets.database import embedded_server_url
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer

T = TypeVar("T")
SOURCE = "bench"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
PATH_TIMEOUT_S = 1800
RUNS = """{ runsOrError(limit: 1000) { ... on Runs { results {
    runId status startTime endTime tags { key value } } } } }"""
TICKS = """query($name: String!) { sensorOrError(sensorSelector: {
    repositoryName: "__repository__", repositoryLocationName: "ingest_assets",
    sensorName: $name }) { ... on Sensor { sensorState {
    ticks(limit: 20) { status timestamp runIds } } } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status timestamp } } }"""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class DevStack:
    """A running `ingest dev` on a free loopback port, and GraphQL against it."""

    def __init__(self, env: dict[str, str], log: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest_assets.cli", "dev", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        return response.json()["data"]

    def wait_serving(self) -> None:
        def up() -> bool | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"ingest dev exited ({self.process.returncode})")
            with contextlib.suppress(httpx.HTTPError):
                ticks = self.ticks("changes_sensor")  # the daemon is up once a sensor ticked
                return True if ticks else None
            return None

        wait_for("ingest dev to serve and its daemon to tick", up, timeout=180)

    def ticks(self, sensor: str) -> list[dict[str, Any]]:
        found = self.graphql(TICKS, name=sensor)["sensorOrError"]
        return found["sensorState"]["ticks"] if found else []

    def runs(self, tag: tuple[str, str] = ("ingest/source", SOURCE)) -> list[dict[str, Any]]:
        runs = self.graphql(RUNS)["runsOrError"]["results"]
        return [r for r in runs if {"key": tag[0], "value": tag[1]} in r["tags"]]

    def wait_runs_ended(
        self, tag: tuple[str, str] = ("ingest/source", SOURCE), timeout: float = PATH_TIMEOUT_S
    ) -> list[dict]:
        """Every run with the tag has ended; at least one exists."""

        def ended() -> list[dict[str, Any]] | None:
            new = self.runs(tag)
            return new if new and all(r["status"] in TERMINAL for r in new) else None

        return wait_for("the runs to end", ended, timeout, interval=1.0)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "ingest_assets.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ingest {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout

    def stop(self) -> None:
        self.client.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


@contextlib.contextmanager
def dev_stack(env: dict[str, str], log: Path) -> Iterator[DevStack]:
    stack = DevStack(env, log)
    try:
        stack.wait_serving()
        yield stack
    finally:
        stack.stop()


class PathLoad:
    """What a path cost the machine: the CPU seconds of all its cores and of the home's
    PostgreSQL (the server process and its backends, ended ones included), and the sessions
    opened on Dagster's database (each a forked backend: dagster_postgres without a pool
    opened one per query). The machine's share tells whether a path waits on Dagster or on the
    CPU: the pipeline, PostgreSQL, Dagster and the fake server all run on the same cores."""

    def __init__(self, home: Path):
        self.pgdata = home / "pg"
        self.url = embedded_server_url(self.pgdata)
        self._start = self._now()

    def _now(self) -> tuple[float, float, int]:
        cpu = 0.0
        for server in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if str(self.pgdata) in " ".join(server.info["cmdline"] or []):
                    times = server.cpu_times()  # children_*: its backends that have ended
                    cpu += times.user + times.system + times.children_user + times.children_system
                    for backend in server.children():
                        with contextlib.suppress(psutil.Error):
                            cpu += sum(backend.cpu_times()[:2])
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = 'dagster'"
            ).fetchone()
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return busy, cpu, int(row[0]) if row else 0

    def since_start(self) -> dict[str, float]:
        busy, cpu, sessions = self._now()
        return {
            "machine_cpu_s": busy - self._start[0],
            "postgres_cpu_s": cpu - self._start[1],
            "dagster_sessions": sessions - self._start[2],
        }


def _throughput(server: FakeEmbeddingServer, start: float, runs: list[dict]) -> dict[str, Any]:
    stats = server.stats()
    end = max(r["endTime"] for r in runs)
    failed = [r["runId"] for r in runs if r["status"] != "SUCCESS"]
    if failed:
        raise RuntimeError(f"runs failed: {failed}")
    return {
        "texts": stats["texts_embedded"],
        "seconds": end - start,
        "texts_per_s": stats["texts_embedded"] / (end - start),
        "first_text_after_s": (stats["first_embed_at"] or end) - start,
        "first_run_started_after_s": min(r["startTime"] or end for r in runs) - start,
        "runs": len(runs),
        "texts_by_batch_size": texts_by_batch_size(stats),
        "embedding_span_s": (stats["last_embed_at"] or end) - (stats["first_embed_at"] or end),
        "server_busy_s": stats["busy_s"],
    }


def texts_by_batch_size(stats: dict[str, Any]) -> str:
    """The share of texts sent in requests of up to 32, 64, 128, 256 and more texts."""
    buckets = dict.fromkeys((32, 64, 128, 256, 1 << 30), 0)
    for size, count in stats["requests_by_batch_size"].items():
        buckets[next(b for b in buckets if int(size) <= b)] += int(size) * count
    total = sum(buckets.values()) or 1
    return ", ".join(
        f"{'≤' + str(b) if b < 1 << 30 else '>256'}: {texts / total:.0%}"
        for b, texts in buckets.items()
        if texts
    )


def sensor_path(stack: DevStack, server: FakeEmbeddingServer, folder: Path) -> dict[str, Any]:
    """`ingest source add` → the sources sensor's tick → its runs → indexed. Timed from the
    tick that saw the source (the tick interval is a setting, not ingestion time)."""
    server.reset_stats()
    load = PathLoad(Path(stack.env["INGEST_HOME"]))
    stack.cli("source", "add", SOURCE, str(folder))
    tick = wait_for(
        "a sources_sensor tick with runs",
        lambda: next((t for t in stack.ticks("sources_sensor") if t["runIds"]), None),
        timeout=120,
    )
    runs = stack.wait_runs_ended()
    return _throughput(server, tick["timestamp"], runs) | load.since_start()


def deployment_run_path(
    stack: DevStack, server: FakeEmbeddingServer, folder: Path, source: str
) -> dict[str, Any]:
    """`ingest run FOLDER --url` against `ingest dev`: its runs go through the deployment's
    run queue and launcher. Timed from the command's start to its exit, as a user waits."""
    server.reset_stats()
    started = time.time()
    stack.cli("run", str(folder), "--name", source, "--url", stack.url)
    ended = time.time()
    stats = server.stats()
    return {
        "texts": stats["texts_embedded"],
        "seconds": ended - started,
        "texts_per_s": stats["texts_embedded"] / (ended - started),
        "first_text_after_s": (stats["first_embed_at"] or ended) - started,
        "runs": len(stack.runs(("ingest/source", source))),
    }


def backfill_path(stack: DevStack, server: FakeEmbeddingServer) -> dict[str, Any]:
    """`ingest backfill NAME --all --stage embeddings` after a model change (the stale asset
    alone, as the UI selects it): timed from the backfill's creation (as the UI's launch
    button makes it; the CLI's own start-up, ~2 s, is reported apart)."""
    server.reset_stats()
    load = PathLoad(Path(stack.env["INGEST_HOME"]))
    called = time.time()
    backfill_id = stack.cli(
        "backfill", SOURCE, "--all", "--stage", "embeddings", "--url", stack.url
    ).strip()

    def done() -> dict[str, Any] | None:
        found = stack.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        finished = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
        return found if found["status"] in finished else None

    backfill = wait_for("the backfill to complete", done, timeout=PATH_TIMEOUT_S, interval=1.0)
    runs = stack.wait_runs_ended(("dagster/backfill", backfill_id))
    figures = _throughput(server, backfill["timestamp"], runs) | load.since_start()
    figures["cli_start_s"] = backfill["timestamp"] - called
    return figures


def freshness(stack: DevStack, folder: Path, model: str, edits: int = 20) -> list[float]:
    """Seconds from a file added, changed or deleted until search sees it (or no longer
    does), one edit at a time, each to a file of its own."""
    home = Path(stack.env["INGEST_HOME"])
    table = vector_table_name(model)
    latencies = []
    with psycopg.connect(embedded_server_url(home / "pg"), autocommit=True) as conn:
        conn.execute("SET search_path TO ingest, public")
        documents = sorted(p for p in folder.rglob("*.md"))
        for i in range(edits):
            kind = ("add", "change", "delete")[i % 3]
            marker = f"freshnessmarker{i}x{time.time_ns()}"
            if kind == "add":
                path = folder / f"fresh-{i}-{time.time_ns()}.md"
            else:
                path = documents[(i * 7919) % len(documents)]
            doc_id = path.relative_to(folder).as_posix()
            started = time.time()
            if kind == "delete":
                path.unlink()
            else:
                path.write_text(f"# Fresh {i}\n\nThe word {marker} is new here.\n")

            def seen(doc_id: str = doc_id, marker: str = marker, kind: str = kind) -> bool | None:
                if kind == "delete":
                    row = conn.execute(
                        "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                        " WHERE d.source = %s AND d.doc_id = %s AND d.deleted_at IS NULL",
                        (SOURCE, doc_id),
                    ).fetchone()
                    return True if row and row[0] == 0 else None
                row = conn.execute(
                    sql.SQL(
                        "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                        " JOIN {} v ON v.text_hash = c.text_hash"
                        " WHERE d.source = %s AND d.doc_id = %s AND c.text LIKE %s"
                    ).format(sql.Identifier(table)),
                    (SOURCE, doc_id, f"%{marker}%"),
                ).fetchone()
                return True if row and row[0] > 0 else None

            wait_for(f"{kind} of {doc_id} to be searchable", seen, timeout=180, interval=0.2)
            latencies.append(time.time() - started)
            print(f"    | freshness {kind:<6} {latencies[-1]:5.1f}s {doc_id}", file=sys.stderr)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(latencies: list[float]) -> tuple[float, float]:
    return statistics.median(latencies), percentile(latencies, 0.95)
