"""`ingest dev` end to end: the real Dagster daemon and webserver on the project's dagster.yaml
(PostgreSQL run/event storage in the embedded server), driven only the way a user drives it:
the `ingest` CLI, files in a folder, and the webserver's GraphQL API.

One stack for the module (its own INGEST_HOME, a free port on 127.0.0.1); the tests run in
order and build on each other: add a source, add a file, delete a file, check the checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from ingest_assets.lib.hashing import shard_of

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARDS = 4
SENSOR_INTERVAL_S = 5
SOURCE = "docs"
ASSETS = ("raw_documents", "chunks", "embeddings")
ALL_SHARDS = [f"{s:04d}" for s in range(SHARDS)]
CHECKS = (
    ("embeddings", "every_chunk_has_a_vector"),
    ("embeddings", "vector_dimension_matches_model"),
    ("chunks", "no_chunks_of_deleted_documents"),
    ("raw_documents", "quarantined_documents"),
)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

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

T = TypeVar("T")

RUNS_QUERY = """
{ runsOrError(limit: 500) {
    __typename
    ... on Runs { results {
      runId status jobName creationTime startTime endTime tags { key value } } }
    ... on PythonError { message } } }
"""
RUN_MATERIALIZATIONS_QUERY = """
query Run($runId: ID!) { runOrError(runId: $runId) {
    __typename
    ... on Run { assetMaterializations { partition assetKey { path } } }
    ... on PythonError { message } } }
"""
SENSOR_QUERY = """
query Sensor($name: String!) { sensorOrError(sensorSelector: {
    repositoryName: "__repository__", repositoryLocationName: "ingest_assets",
    sensorName: $name }) {
    __typename
    ... on Sensor { sensorState { status
        ticks(limit: 200) { tickId status timestamp runIds skipReason error { message } } } }
    ... on PythonError { message } } }
"""
PARTITIONS_QUERY = """
query Partitions($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetPartitionStatuses { __typename ... on MultiPartitionStatuses { ranges {
          primaryDimStartKey primaryDimEndKey
          secondaryDim { ... on DefaultPartitionStatuses {
              materializedPartitions failedPartitions } } } } } } } }
"""
CHECK_EXECUTIONS_QUERY = """
query Checks($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 200) {
    runId status timestamp evaluation { success } } }
"""


def report(line: str) -> None:
    """Timings and findings, visible with `pytest -s`."""
    print(f"[e2e] {line}", flush=True)  # noqa: T201


def tag(run: dict[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def partition_key(shard: int) -> str:
    return f"{SOURCE}|{shard:04d}"


class Stack:
    """A running `ingest dev`, and the ways a user talks to it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        client: httpx.Client,
        env: dict[str, str],
        corpus: Path,
        log: Path,
    ):
        self.process = process
        self.client = client
        self.env = env
        self.corpus = corpus
        self.log = log
        self.state: dict[str, Any] = {}

    # -- waiting ----------------------------------------------------------------------------

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as err:
            return f"(no log: {err})"

    def wait_for(
        self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0
    ) -> T:
        """Poll `probe` until it returns something other than None: at most `timeout` seconds
        and timeout/interval + 1 attempts. Fails at once when the stack has died."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / interval) + 1):
            if self.process.poll() is not None:
                raise AssertionError(
                    f"`ingest dev` exited ({self.process.returncode}) while waiting for {what}:\n"
                    + self.log_tail()
                )
            found = probe()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}\n" + self.log_tail()
        )

    # -- the CLI ----------------------------------------------------------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "ingest_assets.cli", *args],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr[-3000:]}"
        return result

    def search(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        return json.loads(self.cli("search", query, "-k", str(k), "--json").stdout)

    def status(self) -> dict[str, Any]:
        rows = json.loads(self.cli("status", "--json").stdout)
        return {row["source"]: row for row in rows}

    # -- GraphQL ----------------------------------------------------------------------------

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def runs(self) -> list[dict[str, Any]]:
        found = self.graphql(RUNS_QUERY)["runsOrError"]
        assert found["__typename"] == "Runs", found
        return found["results"]

    def run(self, run_id: str) -> dict[str, Any]:
        return next(r for r in self.runs() if r["runId"] == run_id)

    def run_materializations(self, run_id: str) -> list[tuple[str, str]]:
        found = self.graphql(RUN_MATERIALIZATIONS_QUERY, runId=run_id)["runOrError"]
        assert found["__typename"] == "Run", found
        return [
            ("/".join(m["assetKey"]["path"]), m["partition"])
            for m in found["assetMaterializations"]
        ]

    def sensor(self, name: str) -> dict[str, Any]:
        found = self.graphql(SENSOR_QUERY, name=name)["sensorOrError"]
        assert found["__typename"] == "Sensor", found
        return found["sensorState"]

    def ticks(self, name: str) -> list[dict[str, Any]]:
        return sorted(self.sensor(name)["ticks"], key=lambda t: t["timestamp"])

    def asset_node(self, asset: str) -> dict[str, Any]:
        found = self.graphql(PARTITIONS_QUERY, path=[asset])["assetNodeOrError"]
        assert found["__typename"] == "AssetNode", found
        return found

    def shards_with(self, asset: str, status: str = "materializedPartitions") -> list[str]:
        """The source's shard keys of `asset` in the given partition status."""
        statuses = self.asset_node(asset)["assetPartitionStatuses"]
        for r in statuses.get("ranges") or []:
            if r["primaryDimStartKey"] <= SOURCE <= r["primaryDimEndKey"]:
                return sorted(r["secondaryDim"].get(status) or [])
        return []

    def check_executions(self, asset: str, check: str) -> list[dict[str, Any]]:
        return self.graphql(CHECK_EXECUTIONS_QUERY, path=[asset], check=check)[
            "assetCheckExecutions"
        ]

    # -- composite waits --------------------------------------------------------------------

    def wait_idle(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Every run has ended (none queued or in progress)."""

        def idle() -> list[dict[str, Any]] | None:
            runs = self.runs()
            return runs if all(r["status"] in TERMINAL for r in runs) else None

        return self.wait_for("every run to end", idle, timeout)

    def wait_new_run(self, known: set[str], timeout: float) -> dict[str, Any]:
        return self.wait_for(
            "a new run",
            lambda: next((r for r in self.runs() if r["runId"] not in known), None),
            timeout,
            interval=0.5,
        )

    def wait_run_ended(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in TERMINAL else None

        return self.wait_for(f"run {run_id} to end", ended, timeout, interval=0.5)

    def requesting_tick(self, sensor: str, run_id: str) -> dict[str, Any]:
        """The tick that created the run (a tick lists its runs once it has launched them)."""
        return self.wait_for(
            f"a {sensor} tick listing run {run_id}",
            lambda: next((t for t in self.ticks(sensor) if run_id in t["runIds"]), None),
            timeout=30,
            interval=0.5,
        )

    def ticks_between(self, sensor: str, start: float, end: float) -> list[dict[str, Any]]:
        """Ticks that began in [start, end): earlier chances the sensor had, and let pass."""
        return [t for t in self.ticks(sensor) if start <= t["timestamp"] < end]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_sigint() -> None:
    # A shell that starts pytest in the background ignores SIGINT, and ignored signals are
    # inherited: give `ingest dev` the Ctrl-C behaviour it has in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for the whole process group (as a terminal sends it), then escalate."""
    pgid = process.pid  # process_group=0: the leader's pid is the group id
    started = time.monotonic()
    for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None and not _group_alive(pgid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        for _ in range(int(grace / 0.2) + 1):
            if process.poll() is not None and not _group_alive(pgid):
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if sig != signal.SIGINT:
            report(f"`ingest dev` needed {sig.name} to stop")
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    report(f"`ingest dev` stopped in {time.monotonic() - started:.1f}s (exit {process.returncode})")


def _release_embedded_postgres(pgdata: Path, env: dict[str, str]) -> None:
    """The embedded server stops with its last holder; when a holder was killed it stays up.
    Joining and leaving again (dead holders are forgotten on join) stops it."""
    pidfile = pgdata / "postmaster.pid"
    for _ in range(20):  # a clean shutdown is stopping it right now
        if not pidfile.exists():
            return
        time.sleep(0.5)
    report("embedded PostgreSQL still up after `ingest dev` ended: stopping it")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from ingest_assets.resources.postgres import embedded_server_url; "
            "embedded_server_url(Path(sys.argv[1]))",
            str(pgdata),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("daemon")
    home = root / "home"
    corpus = root / "corpus"
    for doc_id, text in CORPUS.items():
        (corpus / doc_id).parent.mkdir(parents=True, exist_ok=True)
        (corpus / doc_id).write_text(text)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "DAGSTER_"))}
    env.update(
        INGEST_HOME=str(home),
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS=str(SHARDS),
        INGEST_SENSOR_INTERVAL_S=str(SENSOR_INTERVAL_S),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    log = root / "dev.log"
    started = time.monotonic()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest_assets.cli", "dev", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_default_sigint,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            stack = Stack(process, client, env, corpus, log)

            def server_up() -> bool | None:
                try:
                    return client.get("/server_info", timeout=5).status_code == 200 or None
                except httpx.HTTPError:
                    return None

            stack.wait_for("the webserver's /server_info", server_up, timeout=120, interval=0.5)
            for name in ("sources_sensor", "changes_sensor"):  # the daemon is ticking
                stack.wait_for(f"a first {name} tick", lambda n=name: stack.ticks(n) or None, 60)
            report(f"`ingest dev` up on port {port} in {time.monotonic() - started:.1f}s")
            yield stack
    finally:
        _stop(process)
        _release_embedded_postgres(home / "pg", env)


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


def test_added_file_runs_only_its_shard_within_one_tick_and_is_searchable(stack: Stack):
    known = {r["runId"] for r in stack.wait_idle()}
    shard = shard_of(ADDED_DOC, SHARDS)
    path = stack.corpus / ADDED_DOC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ADDED_TEXT)
    added = time.time()
    clock = time.monotonic()

    run = stack.wait_new_run(known, timeout=60)
    assert tag(run, "dagster/sensor_name") == "changes_sensor"
    assert tag(run, "ingest/trigger") == "change"
    assert (tag(run, RANGE_START), tag(run, RANGE_END)) == (partition_key(shard),) * 2
    tick = stack.requesting_tick("changes_sensor", run["runId"])
    passed = stack.ticks_between("changes_sensor", added, tick["timestamp"])
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
    assert tag(run, "dagster/sensor_name") == "changes_sensor"
    assert (tag(run, RANGE_START), tag(run, RANGE_END)) == (partition_key(shard),) * 2
    tick = stack.requesting_tick("changes_sensor", run["runId"])
    assert stack.ticks_between("changes_sensor", deleted, tick["timestamp"]) == []
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

    for asset in ASSETS:
        stats = stack.asset_node(asset)["partitionStats"]
        assert stats == {
            "numMaterialized": SHARDS,
            "numPartitions": SHARDS,
            "numFailed": 0,
            "numMaterializing": 0,
        }, (asset, stats)
        assert stack.shards_with(asset, "failedPartitions") == []
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in stack.state.items())
    report(f"timings: {timings}")
