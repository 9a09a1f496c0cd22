"""A model change as a gated switch, end to end on a real `ingest dev` (webserver + daemon,
embedded PostgreSQL) and two fake embedding servers over HTTP: model A on one, model B on the
other. Their vectors come from the same hashed words but in 384 and 12 dimensions, so one
query's cosine scores tell which model answered.

1. A is built with `ingest run` (no stack yet) and serves: the first model built.
2. `ingest dev` starts building B (INGEST_EMBEDDING_MODEL=B, on a slow server), and `ingest
   backfill docs --all` (through the webserver, as the UI) fills B. All along, a thread
   searches every second through `ingest_assets.search_api.search` with the restarted stack's
   settings (B configured): every search answers, from A's vectors.
3. During the build, a document saved in the watched folder is picked up by a sensor (the
   folder's notify sensor or the changes sensor, whichever ticks first), searchable under A
   while B is still incomplete, and has a B vector at the end; `ingest model activate B` is
   refused with one line.
4. After the backfill B activates; `ingest model activate A` rolls back at once (timed) and
   searches answer from A again; B activates again through Dagster (the `activate_model` job
   launched over GraphQL, as from the launchpad), which materialises `index_serving` with its
   figures; A is dropped, and dropping the serving B is refused.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
from pydantic import SecretStr

from ingest_assets.embedders import EmbeddingSettings
from ingest_assets.search_api import search
from ingest_assets.settings import IngestSettings
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig
from ingest_assets_tests.e2e.conftest import (
    BACKFILL_TAG,
    REPO_ROOT,
    SOURCE,
    Stack,
    report,
    running_stack,
    tag,
    write_corpus,
)
from ingest_assets_tests.e2e.test_backfills import (
    fake_server_env,
    launch_backfill,
    wait_backfill_runs_ended,
)

pytestmark = pytest.mark.slow

SHARDS = 8  # one backfill run (fanout.SHARDS_PER_RUN shards per run)
MODEL_A, MODEL_B = "fake-a-384", "fake-b-12"
# Hashed words: without a collision two dimensions give the same cosine. In 12 dimensions
# QUERY's words collide, so its score tells B's answer from A's (checked below).
DIMENSION_A, DIMENSION_B = 384, 12
# B's server while the build is watched: four texts per request (one in flight) take 3 s, so
# the backfill lasts ~30 s unless the server is made fast once the checks are done.
B_SLOW_ITEM_MS = 750
MIN_BUILD_S = 10.0  # the build is kept slow at least this long
MIN_SEARCHES_DURING_BUILD = 8
QUERY, EXPECTED = "rosin bow scales violin", "music/violin.md"
NEW_DOC = "music/harpsichord.md"
NEW_TEXT = "# Harpsichord\n\nQuills pluck the harpsichord strings in a baroque continuo.\n"
NEW_QUERY = "harpsichord quills pluck baroque continuo"

MATERIALIZATIONS_QUERY = """
query Materializations($path: [String!]!) { assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset { assetMaterializations(limit: 10) { runId timestamp metadataEntries {
        label __typename
        ... on TextMetadataEntry { text }
        ... on BoolMetadataEntry { boolValue }
        ... on IntMetadataEntry { intValue } } } } } }
"""


def corpus() -> dict[str, str]:
    files = {
        "astronomy/comets.md": "# Comets\n\nIcy comets grow glowing tails near perihelion.\n",
        "cooking/sourdough.md": "# Sourdough\n\nFeed the levain with rye flour every morning.\n",
        "garden/tomatoes.md": "# Tomatoes\n\nStake tomato vines and pinch the suckers weekly.\n",
        EXPECTED: "# Violin\n\nRosin the bow before playing scales on the violin.\n",
        "music/drums.txt": "Drummers keep the backbeat with snare, kick and hi-hat.\n",
        "geology/volcanoes.md": "# Volcanoes\n\nMolten basalt magma erupts from volcanoes.\n",
    }
    for n in range(34):
        files[f"notes/n{n:03d}.txt"] = f"Note {n} is about subject{n} with keyword{n * 7 + 3}.\n"
    return files


@pytest.fixture
def servers() -> Iterator[tuple[FakeEmbeddingServer, FakeEmbeddingServer]]:
    with (
        FakeEmbeddingServer(FakeServerConfig(dimension=DIMENSION_A)) as a,
        FakeEmbeddingServer(FakeServerConfig(dimension=DIMENSION_B)) as b,
    ):
        yield a, b


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`ingest ARGS` with `env`, no stack running."""
    result = subprocess.run(
        [sys.executable, "-m", "ingest_assets.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result


def embedded_url(stack: Stack) -> str:
    """The embedded server's URL, asked by a short-lived process (it joins and leaves): this
    process connects by URL and never holds the server, which stops with `ingest dev`."""
    script = (
        "import sys; from pathlib import Path; "
        "from ingest_assets.database import embedded_server_url; "
        "print(embedded_server_url(Path(sys.argv[1])))"
    )
    home = Path(stack.env["INGEST_HOME"])
    result = subprocess.run(
        [sys.executable, "-c", script, str(home / "pg")],
        cwd=REPO_ROOT,
        env=stack.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def settings_of(stack: Stack, url: str) -> IngestSettings:
    """The stack's settings (the model it builds, its server) on the database's URL."""
    env = stack.env
    embedding = EmbeddingSettings(
        provider="openai",
        model=env["INGEST_EMBEDDING_MODEL"],
        url=env["INGEST_EMBEDDING_URL"],
        timeout_s=10,
        max_attempts=2,
    )
    return IngestSettings(
        home=Path(env["INGEST_HOME"]),
        database_url=SecretStr(url),
        embedding=embedding,
        shards=int(env["INGEST_SHARDS"]),
    )


def top(hits: list[Any]) -> tuple[str, float]:
    """(doc_id, score) of the first hit, from search_api's Hits or the CLI's JSON."""
    first = hits[0]
    if isinstance(first, dict):
        return first["doc_id"], float(first["score"])
    return first.doc_id, float(first.score)


def cli_vector_search(stack: Stack, query: str = QUERY) -> list[dict[str, Any]]:
    result = stack.cli("search", query, "-k", "3", "--mode", "vector", "--json")
    return json.loads(result.stdout)


def count_vectors(url: str, model: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        table = f"ingest.{vector_table_name(model)}"
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not row or not row[0]:
            return 0
        found = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(found[0]) if found else 0


@dataclass
class Probe:
    started: float  # wall clock, as the runs' startTime and endTime
    ended: float
    hits: list[Any] | None
    error: str | None
    b_vectors: int  # B's vectors stored just after the search answered


class Searcher(threading.Thread):
    """A search every second, with the given settings and no model named: the serving one."""

    def __init__(self, settings: IngestSettings, url: str):
        super().__init__(name="searcher", daemon=True)
        self.settings = settings
        self.url = url
        self.probes: list[Probe] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.time()
            hits, error = None, None
            try:
                hits = search(QUERY, 3, mode="vector", settings=self.settings)
            except Exception as err:
                error = f"{type(err).__name__}: {err}"
            ended = time.time()
            try:
                b_vectors = count_vectors(self.url, MODEL_B)
            except psycopg.Error:
                b_vectors = -1
            self.probes.append(Probe(started, ended, hits, error, b_vectors))
            self.halt.wait(max(0.0, 1.0 - (time.time() - started)))

    def stop(self) -> list[Probe]:
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the search thread did not stop"
        return self.probes


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """A refusal's message: exit 1, one line on stderr, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def model_list(stack: Stack) -> dict[str, Any]:
    return json.loads(stack.cli("model", "list", "--json").stdout)


def launch_activation(stack: Stack, model: str) -> str:
    """The `activate_model` job with its run config, launched as from the UI's launchpad."""
    params = {
        "selector": {
            "repositoryLocationName": "ingest_assets",
            "repositoryName": "__repository__",
            "jobName": "activate_model",
        },
        "runConfigData": {"ops": {"index_serving": {"config": {"model": model, "force": False}}}},
        "executionMetadata": {"tags": [{"key": "ingest/activation", "value": "launchpad"}]},
    }
    found = stack.graphql(LAUNCH_PIPELINE_EXECUTION_MUTATION, executionParams=params)
    launched = found["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return str(launched["run"]["runId"])


def serving_materialization(stack: Stack, run_id: str) -> dict[str, Any]:
    found = stack.graphql(MATERIALIZATIONS_QUERY, path=["index_serving"])["assetOrError"]
    assert found["__typename"] == "Asset", found
    mine = [m for m in found["assetMaterializations"] if m["runId"] == run_id]
    assert len(mine) == 1, found
    return {
        e["label"]: e.get("text", e.get("boolValue", e.get("intValue")))
        for e in mine[0]["metadataEntries"]
    }


def test_model_switch_builds_b_while_a_serves_then_gated_activation_rollback_and_drop(
    tmp_path: Path, servers: tuple[FakeEmbeddingServer, FakeEmbeddingServer]
):
    server_a, server_b = servers
    started = time.monotonic()
    files = corpus()
    corpus_dir = write_corpus(tmp_path / "corpus", files)
    home = tmp_path / "home"
    log = tmp_path / "dev.log"
    texts = len(files)  # every file's text is distinct

    # -- 1. A is built (`ingest run`, no stack needed) and serves ------------------------------
    env = fake_server_env(home, server_a, MODEL_A, SHARDS)
    cli(env, "run", str(corpus_dir), "--name", SOURCE)
    listed = json.loads(cli(env, "model", "list", "--json").stdout)
    assert [(m["model"], m["serving"], m["missing"]) for m in listed["models"]] == [
        (MODEL_A, True, 0)
    ], listed
    report(f"model switch: {MODEL_A} built and serving after {time.monotonic() - started:.1f}s")

    # -- 2. the stack builds B: A keeps serving ----------------------------------------------
    env = fake_server_env(home, server_b, MODEL_B, SHARDS)
    # A slow B request must not time out (it would be embedded twice, harmless but noisy).
    env["INGEST_EMBEDDING_TIMEOUT_S"] = "30"
    server_b.configure(per_item_ms=B_SLOW_ITEM_MS)
    # The sensors run as they do by default; each has ticked once (and seen the corpus as
    # stored: no run) when the stack is up.
    with running_stack(env, log, corpus_dir) as stack:
        url = embedded_url(stack)
        settings = settings_of(stack, url)
        row = stack.status()[SOURCE]
        assert (row["serving_model"], row["building_model"]) == (MODEL_A, MODEL_B), row
        assert row["chunks_with_vector"] == row["chunks"] == texts, row
        assert row["vectors_by_model"].get(MODEL_B, 0) == 0, row
        plan = json.loads(stack.cli("model", "plan", "--json").stdout)
        assert (plan["model"], plan["serving"], plan["texts"]) == (MODEL_B, MODEL_A, texts)
        refusal = refused(stack.cli("model", "activate", MODEL_B, check=False))
        assert "has no vectors" in refusal, refusal

        # What A answers (and, if the search followed INGEST_EMBEDDING_MODEL, would not).
        reference_a = top(search(QUERY, 3, mode="vector", model=MODEL_A, settings=settings))
        assert reference_a[0] == EXPECTED, reference_a
        assert top(cli_vector_search(stack)) == pytest.approx(reference_a, abs=1e-5)
        hits = search(NEW_QUERY, 3, mode="vector", settings=settings)
        assert NEW_DOC not in [h.doc_id for h in hits]

        known = {r["runId"] for r in stack.runs()}  # the runs of `ingest run`
        assert all(tag(r, BACKFILL_TAG) is None for r in stack.runs())

        searcher = Searcher(settings, url)
        searcher.start()
        try:
            build_clock = time.monotonic()
            backfill_id = launch_backfill(stack, "--all")

            # -- 3. during the build ------------------------------------------------------
            stack.wait_for(
                f"the backfill's first {MODEL_B} vectors",
                lambda: count_vectors(url, MODEL_B) >= 4 or None,
                timeout=90,
                interval=0.5,
            )
            refusal = refused(stack.cli("model", "activate", MODEL_B, check=False))
            match = re.search(r"(\d+) of (\d+) live chunks have no vector", refusal)
            assert match and "incomplete" in refusal, refusal
            assert 0 < int(match[1]) < int(match[2]) == texts, refusal
            refused_at = time.monotonic() - build_clock

            saved_at = time.monotonic()
            (corpus_dir / NEW_DOC).write_text(NEW_TEXT)

            def new_doc_found_under_a() -> tuple[list[Any], int] | None:
                hits = search(NEW_QUERY, 3, mode="vector", settings=settings)
                if not hits or hits[0].doc_id != NEW_DOC:
                    return None
                return hits, count_vectors(url, MODEL_B)

            new_hits, b_then = stack.wait_for(
                f"{NEW_DOC} to be searchable under {MODEL_A}",
                new_doc_found_under_a,
                timeout=90,
                interval=0.5,
            )
            new_doc_s = time.monotonic() - saved_at
            assert b_then < texts, f"{MODEL_B} complete ({b_then}) before {NEW_DOC} was found"
            backfill_runs = stack.backfill(backfill_id)["runs"]
            assert [r["status"] for r in backfill_runs] == ["STARTED"], backfill_runs

            # Keep B slow until the build has lasted long enough and been searched through.
            def watched_long_enough() -> bool | None:
                during = [p for p in searcher.probes if 0 < p.b_vectors < texts]
                long = time.monotonic() - build_clock >= MIN_BUILD_S
                return (long and len(during) >= MIN_SEARCHES_DURING_BUILD) or None

            stack.wait_for("searches during the build", watched_long_enough, timeout=60)
            server_b.configure(per_item_ms=0)
            (ended,) = wait_backfill_runs_ended(stack, backfill_id, runs=1, timeout=120)
            run = stack.run(ended["runId"])
            assert run["status"] == "SUCCESS", run
            build_s = time.monotonic() - build_clock
            stack.wait_idle(timeout=120)
        finally:
            probes = searcher.stop()

        # Every search answered, from A, also during the backfill run.
        during = [p for p in probes if run["startTime"] <= p.started and p.ended <= run["endTime"]]
        failed = [p for p in probes if p.error or not p.hits]
        assert not failed, [(p.error, p.hits) for p in failed[:5]]
        assert len(during) >= MIN_SEARCHES_DURING_BUILD, (len(during), len(probes))
        assert sum(1 for p in during if 0 < p.b_vectors < texts) >= MIN_SEARCHES_DURING_BUILD
        for probe in probes:
            assert probe.hits is not None and len(probe.hits) == 3
            assert top(probe.hits) == pytest.approx(reference_a, abs=1e-5), probe
        latencies = sorted(p.ended - p.started for p in probes)

        # The document saved during the build: picked up by a sensor, its run started while
        # the backfill's was running, and a vector for both models at the end.
        (doc_run,) = [
            r for r in stack.runs() if r["runId"] not in known and r["runId"] != run["runId"]
        ]
        assert doc_run["status"] == "SUCCESS", doc_run
        trigger = tag(doc_run, "ingest/trigger")
        assert trigger in ("change", "notify"), doc_run["tags"]
        sensor = {"change": "changes_sensor", "notify": "notify_sensor"}[trigger]
        assert stack.requesting_tick(sensor, doc_run["runId"])
        assert doc_run["startTime"] < run["endTime"], (doc_run, run)
        vectors_of_new = stack.sql(
            f"SELECT count(a.text_hash), count(b.text_hash), count(*) FROM chunks c "
            f"JOIN documents d ON d.id = c.document_id "
            f"LEFT JOIN {vector_table_name(MODEL_A)} a USING (text_hash) "
            f"LEFT JOIN {vector_table_name(MODEL_B)} b USING (text_hash) "
            "WHERE d.source = %s AND d.doc_id = %s AND d.deleted_at IS NULL",
            SOURCE,
            NEW_DOC,
        )[0]
        assert vectors_of_new == [1, 1, 1], vectors_of_new
        row = stack.status()[SOURCE]
        assert row["serving_model"] == MODEL_A and row["chunks"] == texts + 1, row
        assert row["chunks_with_vector"] == row["vectors_by_model"][MODEL_B] == texts + 1, row
        report(
            f"model switch: backfill of {MODEL_B} ({texts} texts) ran {build_s:.1f}s; "
            f"activation refused {refused_at:.1f}s in; {len(probes)} searches, "
            f"{len(during)} during the backfill run, all from {MODEL_A} (latency p50 "
            f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} "
            f"ms); {NEW_DOC} searchable under {MODEL_A} {new_doc_s:.1f}s after it was saved, "
            f"with {b_then}/{texts} {MODEL_B} vectors then"
        )

        # -- 4. activation, rollback, activation through Dagster, drop ------------------------
        reference_b = top(search(QUERY, 3, mode="vector", model=MODEL_B, settings=settings))
        assert abs(reference_b[1] - reference_a[1]) > 1e-3, (reference_a, reference_b)

        stack.cli("model", "activate", MODEL_B)
        assert top(cli_vector_search(stack)) == pytest.approx(reference_b, abs=1e-5)
        assert stack.status()[SOURCE]["serving_model"] == MODEL_B

        clock = time.monotonic()
        rollback = stack.cli("model", "activate", MODEL_A)
        rollback_s = time.monotonic() - clock
        assert rollback_s < 15, rollback_s
        assert f"{MODEL_A} serves" in rollback.stderr + rollback.stdout, rollback
        assert top(cli_vector_search(stack)) == pytest.approx(reference_a, abs=1e-5)
        assert top(search(QUERY, 3, mode="vector", settings=settings)) == pytest.approx(
            reference_a, abs=1e-5
        )
        new_hits = search(NEW_QUERY, 3, mode="vector", settings=settings)
        assert new_hits[0].doc_id == NEW_DOC
        clock = time.monotonic()
        model_list(stack)
        read_only_s = time.monotonic() - clock  # what any `ingest model` command costs

        clock = time.monotonic()
        run_id = launch_activation(stack, MODEL_B)
        activation_run = stack.wait_run_ended(run_id, timeout=120)
        dagster_s = time.monotonic() - clock
        assert activation_run["status"] == "SUCCESS", activation_run
        assert stack.run_materializations(run_id) == [("index_serving", None)]
        metadata = serving_materialization(stack, run_id)
        assert metadata["serving_model"] == MODEL_B, metadata
        assert metadata["previous_model"] == MODEL_A, metadata
        assert (metadata["forced"], metadata["chunks"], metadata["chunks_without_vector"]) == (
            False,
            texts + 1,
            0,
        ), metadata
        assert top(cli_vector_search(stack)) == pytest.approx(reference_b, abs=1e-5)

        refusal = refused(stack.cli("model", "drop", MODEL_B, "--yes", check=False))
        assert "serving model" in refusal, refusal
        stack.cli("model", "drop", MODEL_A, "--yes")
        listed = model_list(stack)
        assert [(m["model"], m["serving"]) for m in listed["models"]] == [(MODEL_B, True)]
        history = [(e["model"], e["previous"], e["forced"]) for e in listed["activations"]]
        assert history == [
            (MODEL_B, MODEL_A, False),  # through Dagster
            (MODEL_A, MODEL_B, False),  # the rollback
            (MODEL_B, MODEL_A, False),
            (MODEL_A, None, False),  # the first model built
        ], history
        assert stack.sql(
            "SELECT to_regclass(%s) IS NULL", f"ingest.{vector_table_name(MODEL_A)}"
        ) == [[True]]
        assert top(cli_vector_search(stack)) == pytest.approx(reference_b, abs=1e-5)
        report(
            f"model switch: {MODEL_B} activated; rollback to {MODEL_A} took {rollback_s:.2f}s "
            f"(the CLI command, start to exit; a read-only `ingest model list` takes "
            f"{read_only_s:.2f}s); {MODEL_B} again through the activate_model job "
            f"in {dagster_s:.1f}s (launch to end); {MODEL_A} dropped; "
            f"test {time.monotonic() - started:.1f}s"
        )
