"""Shared helpers of the end-to-end tests: a real `ingest dev` (webserver + daemon on the
project's dagster.yaml, embedded PostgreSQL under a tmp INGEST_HOME), or the same pieces as
separate processes (a code server, a webserver and a daemon, as in a deployment), and the ways
a user talks to them: the `ingest` CLI and the webserver's GraphQL API.

Every wait is bounded in attempts and seconds; every process started here is stopped, also when
a test fails.
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil
import yaml

from ingest_assets.testing.environment import isolated_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = "docs"
ASSETS = ("raw_documents", "chunks", "embeddings")
CHECKS = (
    ("embeddings", "every_chunk_has_a_vector"),
    ("embeddings", "vector_dimension_matches_model"),
    ("chunks", "no_chunks_of_deleted_documents"),
    ("raw_documents", "quarantined_documents"),
)
SENSORS = ("sources_sensor", "changes_sensor", "notify_sensor")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
BACKFILL_TAG = "dagster/backfill"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

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
    ... on Sensor { id sensorState { status
        ticks(limit: 200) { tickId status timestamp runIds skipReason error { message } } } }
    ... on PythonError { message } } }
"""
STOP_SENSOR_MUTATION = """
mutation Stop($id: String!) { stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
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
BACKFILL_QUERY = """
query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions partitionNames
        runs { runId status tags { key value } } }
    ... on PythonError { message } } }
"""
RUN_ENGINE_EVENTS_QUERY = """
query Events($runId: ID!) { logsForRun(runId: $runId, limit: 2000) {
    __typename
    ... on EventConnection { hasMore events { __typename
        ... on EngineEvent { message metadataEntries { label
            ... on TextMetadataEntry { text } } } } }
    ... on PythonError { message } } }
"""
BACKFILL_TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def report(line: str) -> None:
    """Timings and findings, visible with `pytest -s`."""
    print(f"[e2e] {line}", flush=True)  # noqa: T201


def tag(run: dict[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def partition_key(shard: int, source: str = SOURCE) -> str:
    return f"{source}|{shard:04d}"


def stack_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without INGEST_/DAGSTER_ variables, plus `settings`."""
    return isolated_environment(
        INGEST_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **settings
    )


class Stack:
    """A running `ingest dev`, and the ways a user talks to it. A distributed stack passes its
    webserver as `process` and its other processes (code server, daemon, database) as `others`,
    each with its log: a wait fails at once when any of them has died."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        client: httpx.Client,
        env: dict[str, str],
        log: Path,
        corpus: Path | None = None,
        others: Mapping[str, tuple[subprocess.Popen[bytes], Path]] | None = None,
        name: str = "`ingest dev`",
    ):
        self.process = process
        self.client = client
        self.env = env
        self.log = log
        self.corpus = corpus
        self.processes = {name: (process, log), **(others or {})}
        self.state: dict[str, Any] = {}

    # -- waiting ----------------------------------------------------------------------------

    def log_tail(self, chars: int = 4000) -> str:
        tails = []
        for name, (_, log) in self.processes.items():
            try:
                tail = log.read_text(errors="replace")[-chars:]
            except OSError as err:
                tail = f"(no log: {err})"
            tails.append(tail if len(self.processes) == 1 else f"--- {name} ({log}):\n{tail}")
        return "\n".join(tails)

    def wait_for(
        self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0
    ) -> T:
        """Poll `probe` until it returns something other than None: at most `timeout` seconds
        and timeout/interval + 1 attempts. Fails at once when a process of the stack has died."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / interval) + 1):
            for name, (process, _) in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(
                        f"{name} exited ({process.returncode}) while waiting for {what}:\n"
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

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "ingest_assets.cli", *args],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr[-3000:]}"
        return result

    def search(self, query: str, k: int = 5, model: str | None = None) -> list[dict[str, Any]]:
        options = ["--model", model] if model else []
        return json.loads(self.cli("search", query, "-k", str(k), *options, "--json").stdout)

    def status(self) -> dict[str, Any]:
        rows = json.loads(self.cli("status", "--json").stdout)
        return {row["source"]: row for row in rows}

    def sql(self, query: str, *params: Any) -> list[list[Any]]:
        """Rows of one query on the pipeline's schema, from a short-lived process that joins
        the embedded server and leaves it (this process never holds it, so the server stops
        with `ingest dev`)."""
        script = (
            "import json, sys; from pathlib import Path; import psycopg; "
            "from ingest_assets.database import embedded_server_url; "
            "conn = psycopg.connect(embedded_server_url(Path(sys.argv[1]))); "
            "conn.execute('SET search_path TO ingest, public'); "
            "rows = conn.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall(); "
            "conn.close(); print(json.dumps([list(r) for r in rows], default=str))"
        )
        home = Path(self.env["INGEST_HOME"])
        result = subprocess.run(
            [sys.executable, "-c", script, str(home / "pg"), query, json.dumps(params)],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{query}:\n{result.stderr[-3000:]}"
        return json.loads(result.stdout)

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

    def run_pids(self, run_id: str) -> dict[str, set[int]]:
        """The pids that the run's engine events name, by message: "Started process for run"
        (the process that a launcher started for it) and "Executing steps in process"."""
        found = self.graphql(RUN_ENGINE_EVENTS_QUERY, runId=run_id)["logsForRun"]
        assert found["__typename"] == "EventConnection" and not found["hasMore"], found
        pids: dict[str, set[int]] = {}
        for event in found["events"]:
            if event["__typename"] != "EngineEvent":
                continue
            for entry in event["metadataEntries"]:
                if entry["label"] == "pid":
                    message = event["message"].split(" (pid")[0]
                    pids.setdefault(message, set()).add(int(entry["text"]))
        return pids

    def sensor(self, name: str) -> dict[str, Any]:
        found = self.graphql(SENSOR_QUERY, name=name)["sensorOrError"]
        assert found["__typename"] == "Sensor", found
        return {"id": found["id"], **found["sensorState"]}

    def stop_sensor(self, name: str) -> None:
        """Stop the sensor through the API, as the UI's toggle does."""

        def stopped() -> bool | None:
            state = self.sensor(name)
            if state["status"] == "STOPPED":
                return True
            found = self.graphql(STOP_SENSOR_MUTATION, id=state["id"])["stopSensor"]
            assert found["__typename"] == "StopSensorMutationResult", found
            return None

        self.wait_for(f"{name} to be stopped", stopped, timeout=20, interval=0.5)

    def ticks(self, name: str) -> list[dict[str, Any]]:
        return sorted(self.sensor(name)["ticks"], key=lambda t: t["timestamp"])

    def asset_node(self, asset: str) -> dict[str, Any]:
        found = self.graphql(PARTITIONS_QUERY, path=[asset])["assetNodeOrError"]
        assert found["__typename"] == "AssetNode", found
        return found

    def shards_with(
        self, asset: str, status: str = "materializedPartitions", source: str = SOURCE
    ) -> list[str]:
        """The source's shard keys of `asset` in the given partition status."""
        statuses = self.asset_node(asset)["assetPartitionStatuses"]
        for r in statuses.get("ranges") or []:
            if r["primaryDimStartKey"] <= source <= r["primaryDimEndKey"]:
                return sorted(r["secondaryDim"].get(status) or [])
        return []

    def assert_every_partition_materialised(self, partitions: int) -> None:
        for asset in ASSETS:
            stats = self.asset_node(asset)["partitionStats"]
            assert stats == {
                "numMaterialized": partitions,
                "numPartitions": partitions,
                "numFailed": 0,
                "numMaterializing": 0,
            }, (asset, stats)

    def check_executions(self, asset: str, check: str) -> list[dict[str, Any]]:
        return self.graphql(CHECK_EXECUTIONS_QUERY, path=[asset], check=check)[
            "assetCheckExecutions"
        ]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        found = self.graphql(BACKFILL_QUERY, id=backfill_id)["partitionBackfillOrError"]
        assert found["__typename"] == "PartitionBackfill", found
        return found

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


def write_corpus(root: Path, files: Mapping[str, str]) -> Path:
    """A folder of documents: {relative path: text}."""
    root.mkdir(parents=True, exist_ok=True)
    for doc_id, text in files.items():
        (root / doc_id).parent.mkdir(parents=True, exist_ok=True)
        (root / doc_id).write_text(text)
    return root


def free_port() -> int:
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


def stop_process_group(process: subprocess.Popen[bytes], name: str = "`ingest dev`") -> None:
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
            report(f"{name} needed {sig.name} to stop")
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    report(f"{name} stopped in {time.monotonic() - started:.1f}s (exit {process.returncode})")


def release_embedded_postgres(pgdata: Path, env: dict[str, str]) -> None:
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
            "from ingest_assets.database import embedded_server_url; "
            "embedded_server_url(Path(sys.argv[1]))",
            str(pgdata),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def start_process(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`command` in its own process group (stopped with stop_process_group), output to `log`."""
    with log.open("ab") as log_file:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_default_sigint,
        )


def wait_serving(stack: Stack, *, wait_for_ticks: bool) -> None:
    """The webserver answers /server_info; with wait_for_ticks, the daemon has ticked both
    sensors once."""

    def server_up() -> bool | None:
        try:
            return stack.client.get("/server_info", timeout=5).status_code == 200 or None
        except httpx.HTTPError:
            return None

    stack.wait_for("the webserver's /server_info", server_up, timeout=120, interval=0.5)
    if wait_for_ticks:
        for name in SENSORS:
            stack.wait_for(f"a first {name} tick", lambda n=name: stack.ticks(n) or None, 60)


@contextlib.contextmanager
def running_stack(
    env: dict[str, str], log: Path, corpus: Path | None = None, *, wait_for_ticks: bool = True
) -> Iterator[Stack]:
    """`ingest dev` on a free 127.0.0.1 port with `env` (INGEST_HOME set), up and serving
    GraphQL (and, with wait_for_ticks, both sensors ticked once); stopped on the way out,
    with the embedded PostgreSQL it held."""
    port = free_port()
    started = time.monotonic()
    process = start_process(
        [sys.executable, "-m", "ingest_assets.cli", "dev", "--port", str(port)], env, log
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            stack = Stack(process, client, env, log, corpus)
            wait_serving(stack, wait_for_ticks=wait_for_ticks)
            report(f"`ingest dev` up on port {port} in {time.monotonic() - started:.1f}s")
            yield stack
    finally:
        # Dagster's processes (webserver, daemon, code servers, the runs' processes), which
        # `ingest dev` keeps in a session of their own and must stop with itself.
        dagster = [p for p in _python_descendants(process) if p.pid != process.pid]
        stop_process_group(process)
        release_embedded_postgres(Path(env["INGEST_HOME"]) / "pg", env)
    # Reached only when the tests passed: Ctrl-C is the normal way to stop `ingest dev`.
    assert process.returncode == 0, f"`ingest dev` exited {process.returncode} on Ctrl-C"
    left = [p for p in dagster if _running(p)]
    assert not left, f"left running after `ingest dev` stopped: {[p.cmdline() for p in left]}"


def _python_descendants(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        found = psutil.Process(process.pid).children(recursive=True)
        return [p for p in found if "python" in p.name()]
    return []


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- a distributed stack: code server, webserver and daemon as separate processes ---------------

DEPLOY = REPO_ROOT / "deploy"
# Starts (or joins) the embedded PostgreSQL, prepares DAGSTER_HOME with the project's
# dagster.yaml and Dagster's database exactly as `ingest` does, prints the resulting
# environment, and holds the server until its stdin closes: the stack's database service.
DATABASE_HOLDER = """
import json, os, sys
from ingest_assets.local_stack import database_url, open_instance
from ingest_assets.database import exit_cleanly_on_sigterm
from ingest_assets.settings import IngestSettings
exit_cleanly_on_sigterm()
settings = IngestSettings()
url = database_url(settings)
open_instance(settings, url).dispose()
print(json.dumps({"INGEST_DATABASE_URL": url, "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
                  "DAGSTER_PG_URL": os.environ["DAGSTER_PG_URL"]}), flush=True)
sys.stdin.read()
"""


def image_command(host: str, port: int) -> list[str]:
    """The code server command of deploy/Dockerfile (its CMD), served on host:port."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    command: list[str] = json.loads(next(ln for ln in lines if ln.startswith("CMD "))[4:])
    assert command[:3] == ["dagster", "api", "grpc"], command
    for flag, value in (("-h", host), ("-p", str(port))):
        command[command.index(flag) + 1] = value
    return [sys.executable, "-m", *command]


def grpc_workspace(path: Path, host: str, port: int) -> Path:
    """deploy/docker/workspace.yaml (the containers' workspace) pointed at host:port."""
    workspace = yaml.safe_load((DEPLOY / "docker" / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    entry["grpc_server"].update(host=host, port=port)
    path.write_text(yaml.safe_dump(workspace))
    return path


def _read_line(stream: IO[bytes], process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One line from a child's stdout, waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    os.set_blocking(fd, False)
    buffer = b""
    for _ in range(int(timeout / 0.1) + 1):
        with contextlib.suppress(BlockingIOError):
            buffer += os.read(fd, 65536)
        if b"\n" in buffer:
            return buffer.split(b"\n", 1)[0]
        if process.poll() is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise AssertionError(f"no line from the database holder (exit {process.poll()}): {buffer!r}")


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.5) + 1):
        assert process.poll() is None, f"code server exited:\n{log.read_text()[-4000:]}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    raise AssertionError(f"code server not listening after {timeout:.0f}s:\n{log.read_text()}")


@contextlib.contextmanager
def running_distributed_stack(
    env: dict[str, str], workdir: Path, corpus: Path | None = None
) -> Iterator[Stack]:
    """The pieces of a deployment as separate processes on 127.0.0.1, each in its own process
    group: a database service (the embedded PostgreSQL, held by a small process), a code server
    started with the image's command (`dagster api grpc -m ingest_assets.definitions`), and
    `dagster-webserver` and `dagster-daemon` loading it through the containers' workspace file
    (a grpc_server entry), on the project's dagster.yaml. Every process gets the database as
    INGEST_DATABASE_URL and DAGSTER_PG_URL, as in a deployment. Stopped on the way out (daemon
    first, so that nothing new starts), also when the test fails."""
    started = time.monotonic()
    bin_dir = Path(sys.executable).parent
    grpc_port, web_port = free_port(), free_port()
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    with (workdir / "database.log").open("ab") as log_file:
        holder = subprocess.Popen(
            [sys.executable, "-c", DATABASE_HOLDER],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            process_group=0,
        )
    try:
        assert holder.stdout is not None
        env = {**env, **json.loads(_read_line(holder.stdout, holder, timeout=120))}
        workspace = grpc_workspace(workdir / "workspace.yaml", "127.0.0.1", grpc_port)
        log = workdir / "code-server.log"
        processes["code server"] = (
            start_process(image_command("127.0.0.1", grpc_port), env, log),
            log,
        )
        _wait_listening(grpc_port, processes["code server"][0], log, timeout=120)
        for name, command in (
            ("webserver", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1"]),
            ("daemon", [sys.executable, "-m", "ingest_assets.dagster_processes", "daemon", "run"]),
        ):
            log = workdir / f"{name}.log"
            if name == "webserver":
                command += ["-p", str(web_port)]
            processes[name] = (start_process([*command, "-w", str(workspace)], env, log), log)
        webserver, web_log = processes["webserver"]
        with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30) as client:
            others = {
                "database": (holder, workdir / "database.log"),
                **{k: v for k, v in processes.items() if k != "webserver"},
            }
            stack = Stack(webserver, client, env, web_log, corpus, others, name="webserver")
            wait_serving(stack, wait_for_ticks=True)
            report(
                f"distributed stack up in {time.monotonic() - started:.1f}s: code server on "
                f"{grpc_port}, webserver on {web_port}"
            )
            yield stack
    finally:
        for name in ("daemon", "webserver", "code server"):
            if name in processes:
                stop_process_group(processes[name][0], name)
        with contextlib.suppress(OSError):
            if holder.stdin is not None:
                holder.stdin.close()  # the holder's cue to leave, which stops the server
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_process_group(holder, "database holder")
        if holder.stdout is not None:
            holder.stdout.close()
        release_embedded_postgres(Path(env["INGEST_HOME"]) / "pg", env)
