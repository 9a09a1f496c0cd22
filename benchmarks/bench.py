"""Throughput benchmarks: the embedding server's ceiling against `ingest run` end to end.

    python -m benchmarks.bench                 # quick sizes (minutes)
    python -m benchmarks.bench --work /tmp/ingest-bench --documents 10000 \
        --rerun-documents 100000 --memory-sizes 10000,100000
    python -m benchmarks.bench --work /tmp/ingest-bench --large-documents 500000 \
        --skip b,c,d,e                         # (h): ~10 min to generate, ~40 to ingest

Prints a table and writes JSON to benchmarks/results/. Every server binds 127.0.0.1 and is
stopped at the end; every run is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

from benchmarks import dagster_paths as paths
from benchmarks import profile as sampling
from benchmarks.corpus import generate_corpus
from ingest_assets.database import embedded_server_url
from ingest_assets.testing.environment import isolated_environment
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"  # corpora and homes; --work moves them (a 100k corpus is 0.7 GB)
RESULTS = ROOT / "results"
# A GPU-like server modelled at 2,000 chunks/s: 4 ms per request plus 0.484 ms per text, one
# batch at a time, so a batch of 256 takes 128 ms (the target server).
GPU_MODEL = FakeServerConfig(
    base_latency_ms=4.0, per_item_ms=0.484375, capacity=1, fast_vectors=True
)
RUN_TIMEOUT_S = 7200  # (h) at 500,000 documents takes ~40 min
PARALLEL: list[str] = []  # `ingest run` options, set by --parallel


@dataclass
class Results:
    machine: dict[str, object] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)

    load: dict[str, list[float]] = field(default_factory=dict)
    out: Path | None = None  # rewritten after every figure: a late failure keeps the rest

    def add(self, key: str, value: object, note: str = "") -> None:
        """A figure, with the machine's load average when it was taken (a shared machine)."""
        self.figures[key] = value
        self.load[key] = [round(x, 2) for x in os.getloadavg()]
        load = f"load {self.load[key][0]:.2f}"
        print(f"{key:<48} {value!s:>14}  {note} [{load}]", flush=True)
        self.save()

    def save(self) -> None:
        if self.out is not None:
            data = {k: v for k, v in asdict(self).items() if k != "out"}
            self.out.write_text(json.dumps(data, indent=2))


def corpus(documents: int) -> Path:
    """A generated corpus, cached by size (seed 0)."""
    path = WORK / f"corpus-{documents}"
    marker = path / ".complete"
    if not marker.exists():
        generate_corpus(path, documents=documents, seed=0)
        marker.write_text("ok")
    return path


def sample_texts(count: int) -> list[str]:
    """Chunk-sized English texts (~150 tokens), as the pipeline sends them."""
    root = corpus(200)
    words = " ".join(p.read_text(errors="ignore") for p in sorted(root.rglob("*.md"))).split()
    return [" ".join(words[(i * 97) % (len(words) - 120) :][:120]) for i in range(count)]


async def _load(url: str, texts: list[str], batch: int, concurrency: int) -> float:
    """Texts/s that `concurrency` clients sending `batch` texts per request achieve."""
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                body = {"model": "m", "input": queue.get_nowait(), "encoding_format": "base64"}
                response = await client.post(f"{url}/v1/embeddings", json=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(texts) / (time.perf_counter() - started)


def server_ceiling(
    results: Results, server: FakeEmbeddingServer, key: str = "a_server_ceiling_chunks_per_s"
) -> tuple[float, int, int]:
    """(a) the best texts/s a plain load generator gets, and the batch/concurrency for it."""
    texts = sample_texts(4000)
    best = (0.0, 0, 0)
    for batch in (32, 64, 128, 256):
        for concurrency in (1, 2, 4):
            rate = asyncio.run(_load(server.url, texts, batch, concurrency))
            best = max(best, (rate, batch, concurrency))
    results.add(key, round(best[0]), f"batch {best[1]}, {best[2]} in flight")
    return best


def ingest_env(
    home: Path, url: str | None, batch: int = 64, concurrency: int = 4
) -> dict[str, str]:
    env = isolated_environment(INGEST_HOME=str(home), INGEST_EMBEDDING_BATCH_SIZE=str(batch))
    env.update(
        INGEST_EMBEDDING_CONCURRENCY=str(concurrency), INGEST_EMBEDDING_MAX_BATCH_TOKENS="65536"
    )
    if url:
        env.update(
            INGEST_EMBEDDING_PROVIDER="openai",
            INGEST_EMBEDDING_URL=url,
            INGEST_EMBEDDING_MODEL="bench",
        )
    else:
        env.update(INGEST_EMBEDDING_PROVIDER="hashing", INGEST_EMBEDDING_MODEL="hashing-384")
    return env


_PREPARED: set[str] = set()


def prepare_home(env: dict[str, str]) -> None:
    """Start the home's embedded PostgreSQL (held by this process) and create Dagster's
    storage there, as the first `ingest` command in a new home does."""
    home = env["INGEST_HOME"]
    embedded_server_url(Path(home) / "pg")
    if home in _PREPARED:
        return
    script = (
        "from ingest_assets.local_stack import database_url, open_instance\n"
        "from ingest_assets.settings import IngestSettings\n"
        "settings = IngestSettings()\n"
        "open_instance(settings, database_url(settings)).dispose()\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    _PREPARED.add(home)


def tree_memory(process: psutil.Process) -> int:
    """Memory of a process and its children (the forked shard-range runs). Proportional set
    size: pages a fork shares with its parent count once, split between them, not once per
    process as summed RSS would count them."""
    total = 0
    for each in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += each.memory_full_info().pss
    return total


@dataclass
class RunFigures:
    seconds: float
    embedded: int
    peak_rss_mib: float
    summary: str


def ingest_run(folder: Path, env: dict[str, str], profile: Path | None = None) -> RunFigures:
    """`ingest run` as a child process: wall time, texts embedded, and peak memory (RSS of the
    process and its children, sampled every 0.1 s; the embedded PostgreSQL is not counted).
    The home's embedded PostgreSQL is started first and held by this process, as `ingest dev`
    would hold it, and Dagster's storage is created in it: creating a database cluster and
    Dagster's schema (once per installation) is not ingestion time."""
    prepare_home(env)
    command = [sys.executable, "-m", "ingest_assets.cli", "run", str(folder), "--name", "bench"]
    command += PARALLEL
    if profile:
        command = sampling.command(profile, command)
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    process = psutil.Process(child.pid)
    stderr_chunks: list[str] = []

    def relay() -> None:  # the run's progress lines, shown as they come
        for line in child.stderr:
            stderr_chunks.append(line)
            if line.strip():
                print(f"    | {line.rstrip()}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    while child.poll() is None:
        if time.perf_counter() - started > RUN_TIMEOUT_S:
            child.kill()
            raise RuntimeError("ingest run timed out")
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_memory(process))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    reader.join(timeout=10)
    stderr = "".join(stderr_chunks)
    if child.returncode != 0:
        raise RuntimeError(f"ingest run failed:\n{stderr[-3000:]}")
    summary = " ".join(stderr.split())
    embedded = int(summary.split("vectors ")[1].split(" written")[0])
    return RunFigures(seconds, embedded, peak / 2**20, summary[-400:])


def end_to_end(results: Results, documents: int, server: FakeEmbeddingServer, best: tuple) -> None:
    """(b) `ingest run` against the same server, and its ratio to the ceiling."""
    _, batch, concurrency = best
    home = new_home("b")
    figures = ingest_run(corpus(documents), ingest_env(home, server.url, batch, concurrency))
    rate = figures.embedded / figures.seconds
    results.add(
        "b_ingest_run_chunks_per_s",
        round(rate),
        f"{figures.embedded} chunks in {figures.seconds:.1f}s",
    )
    results.add("b_over_a", round(rate / best[0], 3), "target >= 0.9")
    results.add(f"f_peak_rss_mib_{documents}_docs", round(figures.peak_rss_mib), "target <= 1024")


def dagster_paths(
    results: Results,
    documents: int,
    server: FakeEmbeddingServer,
    best: tuple,
    edits: int,
    parts: set[str],
    small_documents: int,
) -> None:
    """(i) the same corpus three ways against the server of (a), side by side: `ingest run`,
    a new source picked up by the sources sensor under `ingest dev`, and `ingest backfill
    --all` after a model change (ingest dev restarted with the new model, as a deployment
    would be); with the start latency of each; then (j) freshness of single-file edits under
    the same `ingest dev`. Default settings but the batch and requests in flight of (a)."""
    _, batch, concurrency = best
    folder = corpus(documents)
    if "cli" in parts:
        cli_path(results, documents, folder, server, best)
    if "deployment" in parts:
        for size in sorted({small_documents, documents}):
            deployment_path(results, size, server, best)
    if not parts & {"sensor", "backfill", "fresh"}:
        return
    home = new_home("i-dev")
    env = ingest_env(home, server.url, batch, concurrency)
    if "defaults" in parts:  # default embedding settings: the batch size adapts by itself
        for name in ("BATCH_SIZE", "CONCURRENCY", "MAX_BATCH_TOKENS"):
            env.pop(f"INGEST_EMBEDDING_{name}")
    prepare_home(env)
    edited = WORK / f"corpus-i-{time.time_ns()}"  # (j) edits a copy, not the cached corpus
    subprocess.run(["cp", "-a", str(folder), str(edited)], check=True)
    log = home / "ingest-dev.log"
    with paths.dev_stack(env, log) as stack:
        sensor = paths.sensor_path(stack, server, edited)
    results.add(
        f"i_sensor_chunks_per_s_{documents}_docs",
        round(sensor["texts_per_s"]),
        f"{sensor['texts_per_s'] / best[0]:.2f} of (a); {sensor['texts']} chunks in "
        f"{sensor['seconds']:.1f}s from the tick, {sensor['runs']} runs; texts by batch "
        f"size {sensor['texts_by_batch_size']}; {busy(sensor)}",
    )
    results.add(
        "i_sensor_first_text_s",
        round(sensor["first_text_after_s"], 1),
        f"after the tick (the first run started after {sensor['first_run_started_after_s']:.1f}s)",
    )
    if parts & {"backfill", "fresh"}:
        env = {**env, "INGEST_EMBEDDING_MODEL": "bench-2"}
        with paths.dev_stack(env, log) as stack:
            if "backfill" in parts:
                backfill_path(results, documents, stack, server, best)
                switch_models(results, stack, "bench-2", "bench")
            if "fresh" in parts and edits:
                latencies = paths.freshness(stack, edited, "bench-2", edits)
                p50, p95 = paths.summarise(latencies)
                results.figures["j_freshness_s"] = [round(x, 2) for x in latencies]
                results.add("j_freshness_p50_s", round(p50, 1), f"{edits} edits; target <= 15")
                results.add("j_freshness_p95_s", round(p95, 1), "target <= 30")
    subprocess.run(["rm", "-rf", str(edited)], check=False)


def busy(path: dict) -> str:
    """How the server's time went between the first and last text: busy, or waiting for
    the runs (the part the path loses to its own overheads rather than to its start); and the
    CPU the path took from the machine, whose share of the cores says whether the runs could
    have gone faster on these cores."""
    span = path["embedding_span_s"]
    cores = psutil.cpu_count() or 1
    share = path["machine_cpu_s"] / (cores * path["seconds"])
    return (
        f"server busy {path['server_busy_s']:.0f}s of the {span:.0f}s from first to last text; "
        f"machine {path['machine_cpu_s']:.0f} CPU-s, {share:.0%} of its {cores} cores over the "
        f"path; PostgreSQL {path['postgres_cpu_s']:.0f} CPU-s, {path['dagster_sessions']} "
        "sessions opened on Dagster's database"
    )


def switch_models(results: Results, stack: paths.DevStack, new: str, old: str) -> None:
    """The switch after the backfill, as an operator makes it: activate the new model (the
    gates re-count every live chunk), then drop the old one, so (j) measures the steady state
    (one model kept current) rather than the build-beside state (two)."""
    started = time.perf_counter()
    stack.cli("model", "activate", new)
    results.add(
        "i_activation_s",
        round(time.perf_counter() - started, 2),
        "`ingest model activate`, whole command",
    )
    stack.cli("model", "drop", old, "--yes")


def cli_path(
    results: Results, documents: int, folder: Path, server: FakeEmbeddingServer, best: tuple
) -> None:
    _, batch, concurrency = best
    cli = ingest_run(folder, ingest_env(new_home("i"), server.url, batch, concurrency))
    rate = cli.embedded / cli.seconds
    results.add(
        f"i_cli_chunks_per_s_{documents}_docs",
        round(rate),
        f"{rate / best[0]:.2f} of (a); {cli.embedded} chunks in {cli.seconds:.1f}s",
    )


def deployment_path(
    results: Results, documents: int, server: FakeEmbeddingServer, best: tuple
) -> None:
    """`ingest run --url` against a running `ingest dev` (a fresh home each size): the plan's
    runs through the deployment's queue and launcher, timed as the command's wall time."""
    _, batch, concurrency = best
    home = new_home("i-deployment")
    env = ingest_env(home, server.url, batch, concurrency)
    prepare_home(env)
    with paths.dev_stack(env, home / "ingest-dev.log") as stack:
        figures = paths.deployment_run_path(stack, server, corpus(documents), paths.SOURCE)
    results.add(
        f"i_deployment_chunks_per_s_{documents}_docs",
        round(figures["texts_per_s"]),
        f"{figures['texts_per_s'] / best[0]:.2f} of (a); {figures['texts']} chunks in "
        f"{figures['seconds']:.1f}s, {figures['runs']} runs; first text after "
        f"{figures['first_text_after_s']:.1f}s",
    )


def backfill_path(
    results: Results, documents: int, stack: paths.DevStack, server: FakeEmbeddingServer, best
) -> None:
    backfill = paths.backfill_path(stack, server)
    results.add(
        f"i_backfill_chunks_per_s_{documents}_docs",
        round(backfill["texts_per_s"]),
        f"{backfill['texts_per_s'] / best[0]:.2f} of (a); {backfill['texts']} chunks in "
        f"{backfill['seconds']:.1f}s from the launch, {backfill['runs']} runs; texts by "
        f"batch size {backfill['texts_by_batch_size']}; {busy(backfill)}",
    )
    results.add(
        "i_backfill_first_text_s",
        round(backfill["first_text_after_s"], 1),
        f"after the backfill's creation (the CLI took {backfill['cli_start_s']:.1f}s to "
        f"create it; the first run started after {backfill['first_run_started_after_s']:.1f}s); "
        "target <= 10",
    )


# A server with no cost per request (batch size makes no difference to it), at ~2,000 texts/s.
FLAT_MODEL = FakeServerConfig(per_item_ms=0.5, capacity=1, fast_vectors=True)


def default_settings(results: Results, documents: int) -> None:
    """(k) `ingest run` with default embedding settings (batch 32, 8,192 tokens, 4 in
    flight; the batch size then adapts) against a server that prefers large batches (the
    model of (a)) and one that does not care, each as a ratio to its own ceiling."""
    for name, config in (("large_batches", GPU_MODEL), ("flat", FLAT_MODEL)):
        with FakeEmbeddingServer(config) as server:
            ceiling, batch, concurrency = server_ceiling(results, server, f"k_{name}_ceiling")
            env = isolated_environment(
                INGEST_HOME=str(new_home(f"k-{name}")),
                INGEST_EMBEDDING_PROVIDER="openai",
                INGEST_EMBEDDING_URL=server.url,
                INGEST_EMBEDDING_MODEL="bench",
            )
            figures = ingest_run(corpus(documents), env)
            rate = figures.embedded / figures.seconds
            results.add(
                f"k_{name}_default_settings_chunks_per_s_{documents}_docs",
                round(rate),
                f"{rate / ceiling:.2f} of its ceiling ({ceiling:.0f}/s at batch {batch}, "
                f"{concurrency} in flight); target >= 0.9",
            )


def cpu_seconds(server: FakeEmbeddingServer) -> float:
    """CPU time the fake server's process has used so far."""
    times = psutil.Process(server.pid).cpu_times()
    return float(times.user + times.system)


def large_run(results: Results, documents: int, server: FakeEmbeddingServer, best: tuple) -> None:
    """(h) one `ingest run` of a large corpus against the server of (a): it completes, and
    how long it takes."""
    _, batch, concurrency = best
    home = new_home("h")
    figures = ingest_run(corpus(documents), ingest_env(home, server.url, batch, concurrency))
    rate = figures.embedded / figures.seconds
    results.add(
        f"h_total_s_{documents}_docs",
        round(figures.seconds),
        f"{figures.embedded} chunks, {rate:.0f}/s = {rate / best[0]:.2f} of (a); "
        f"peak {figures.peak_rss_mib:.0f} MiB",
    )


def pipeline_ceiling(results: Results, documents: int) -> None:
    """(c) a zero-latency server: what the pipeline itself can do; then the same run sampled
    by py-spy, for where the CPU goes."""
    with FakeEmbeddingServer(FakeServerConfig(fast_vectors=True)) as fast:
        home = new_home("c")
        server_cpu = cpu_seconds(fast)
        figures = ingest_run(corpus(documents), ingest_env(home, fast.url, 256, 4))
        server_cpu = cpu_seconds(fast) - server_cpu
        rate = figures.embedded / figures.seconds
        results.add(
            "c_pipeline_ceiling_chunks_per_s",
            round(rate),
            f"{figures.embedded} chunks in {figures.seconds:.1f}s; target >= 5000",
        )
        results.add(
            "c_fake_server_cpu_s", round(server_cpu, 1), "the server's share of the 2 cores"
        )
        raw = WORK / "profile-c.txt"
        if not sampling.available():
            results.add("c_profile", "skipped", "needs py-spy (the dev extra)")
            return
        home = new_home("c")
        profiled = ingest_run(corpus(documents), ingest_env(home, fast.url, 256, 4), raw)
    results.add(
        "c_sampled_chunks_per_s",
        round(profiled.embedded / profiled.seconds),
        f"the same run under py-spy, {profiled.seconds:.1f}s wall",
    )
    parts = sampling.breakdown(raw)
    results.figures["c_profile_cpu_s"] = parts
    for where, seconds in parts.items():
        share = 100 * seconds / parts["total CPU"] if parts["total CPU"] else 0.0
        print(f"    {seconds:7.2f}s {share:5.1f}%  {where}")


def local_provider(results: Results, count: int) -> None:
    """(d) the local provider against raw SentenceTransformer.encode on the same texts."""
    try:
        import numpy as np
        from sentence_transformers import SentenceTransformer

        from ingest_assets.embedders import EmbeddingSettings, open_embedder
        from ingest_assets.embedders.local import model_path
    except ImportError:
        results.add("d_local_over_raw", "skipped", "needs the 'local' extra")
        return
    texts = sample_texts(count)
    model = SentenceTransformer(str(model_path("all-MiniLM-L6-v2")), device="cpu")
    model.encode(texts[:32])
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    raw = count / (time.perf_counter() - started)

    async def through_provider() -> float:
        spec = EmbeddingSettings(provider="local", model="all-MiniLM-L6-v2", batch_size=32)
        async with open_embedder(spec) as embedder:
            await embedder.embed(texts[:32])
            started = time.perf_counter()
            for i in range(0, count, 256):
                vectors = await embedder.embed(texts[i : i + 256])
                assert np.isfinite(vectors).all()
            return count / (time.perf_counter() - started)

    provider = asyncio.run(through_provider())
    results.add("d_raw_encode_chunks_per_s", round(raw, 1))
    results.add("d_local_provider_chunks_per_s", round(provider, 1))
    results.add("d_local_over_raw", round(provider / raw, 3), "target >= 0.9")


def no_change_rerun(results: Results, documents: int) -> None:
    """(e) seconds for a re-run over `documents` unchanged documents (unless (f) measured it
    already); and (g) Dagster overhead."""
    env = ingest_env(WORK / f"home-e-{documents}", None)
    if f"e_no_change_rerun_s_{documents}_docs" not in results.figures:
        home = WORK / f"home-e-{documents}"
        folder = corpus(documents)
        if not (home / ".ingested").exists():
            ingest_run(folder, env)
            (home / ".ingested").write_text("ok")
        figures = ingest_run(folder, env)
        results.add(
            f"e_no_change_rerun_s_{documents}_docs",
            round(figures.seconds, 1),
            "target <= 20 (100k)",
        )
    one = {**env, "INGEST_SHARDS": "1", "INGEST_HOME": str(WORK / "home-g")}
    tiny = corpus(200)
    ingest_run(tiny, one)
    single = ingest_run(tiny, one).seconds
    sixty_four = {**one, "INGEST_SHARDS": "64", "INGEST_HOME": str(WORK / "home-g64")}
    ingest_run(tiny, sixty_four)
    many = ingest_run(tiny, sixty_four).seconds
    results.add("g_run_overhead_s", round(single, 2), "no-op run incl. process start, 1 shard")
    results.add(
        "g_per_shard_overhead_s", round((many - single) / 63, 3), "extra per shard in a run"
    )


def memory(results: Results, sizes: list[int], server_url: str, rerun: int) -> None:
    """(f) peak memory of `ingest run` at each size (fresh home each), and at the size of (e)
    the no-change re-run over that home (so a 100k corpus is ingested once, not twice)."""
    for size in sizes:
        home = new_home(f"f-{size}")
        env = ingest_env(home, server_url, 256, 2)
        figures = ingest_run(corpus(size), env)
        results.add(
            f"f_peak_rss_mib_{size}_docs",
            round(figures.peak_rss_mib),
            f"{figures.embedded} chunks in {figures.seconds:.0f}s "
            f"({figures.embedded / figures.seconds:.0f}/s)",
        )
        if size == rerun:
            again = ingest_run(corpus(size), env)
            results.add(
                f"e_no_change_rerun_s_{size}_docs", round(again.seconds, 1), "target <= 20 (100k)"
            )


_HOMES: list[Path] = []


def new_home(label: str) -> Path:
    """A fresh INGEST_HOME under WORK, removed when the benchmark ends or by the next run (a
    20,000-document home holds ~1.8 GB; a full run makes a dozen)."""
    home = WORK / f"home-{label}-{time.time_ns()}"
    _HOMES.append(home)
    return home


def remove_homes(homes: list[Path], wait_s: float, stop: bool = False) -> None:
    """Remove homes whose embedded PostgreSQL has stopped (it stops with the last process
    that held it, which may be this one: those are removed by the next run). `stop`: this
    run's own homes, whose server is stopped (fast shutdown) if it outlived the wait: one
    held by `ingest dev` through a restart was once left running after the bench."""
    deadline = time.monotonic() + wait_s
    for home in homes:
        pid_file = home / "pg" / "postmaster.pid"
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        if stop and pid_file.exists():
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            for _ in range(40):
                if not pid_file.exists():
                    break
                time.sleep(0.25)
        if not pid_file.exists():
            shutil.rmtree(home, ignore_errors=True)


def earlier_homes() -> list[Path]:
    """Fresh homes left by earlier runs (home-<label>-<time_ns>), not the cached ones."""
    return [p for p in WORK.glob("home-*") if p.name.rsplit("-", 1)[-1].isdigit()
            and len(p.name.rsplit("-", 1)[-1]) >= 18]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=2000, help="corpus for (b) and (c)")
    parser.add_argument("--rerun-documents", type=int, default=10000, help="corpus for (e)")
    parser.add_argument("--memory-sizes", default="", help="comma-separated sizes for (f)")
    parser.add_argument(
        "--large-documents", type=int, default=0, help="corpus for (h), e.g. 500000 (0: skip)"
    )
    parser.add_argument(
        "--paths-documents", type=int, default=20000, help="corpus for (i), the Dagster paths"
    )
    parser.add_argument("--edits", type=int, default=20, help="single-file edits for (j)")
    parser.add_argument(
        "--paths",
        default="cli,deployment,sensor,backfill,fresh",
        help="which parts of (i) and (j) to run; add `defaults` for default embedding settings",
    )
    parser.add_argument("--local-texts", type=int, default=256, help="texts for (d)")
    parser.add_argument("--skip", default="", help="comma-separated letters to skip")
    parser.add_argument("--work", type=Path, default=WORK, help="corpora and homes (/tmp/...)")
    parser.add_argument(
        "--parallel", type=int, default=0, help="`ingest run --parallel N` (0: its default)"
    )
    parser.add_argument(
        "--keep-homes", action="store_true", help="keep the INGEST_HOMEs the run made"
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    globals()["WORK"] = args.work
    if args.parallel:
        PARALLEL[:] = ["--parallel", str(args.parallel)]
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.keep_homes:
        remove_homes(earlier_homes(), wait_s=0)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results = Results(
        out=RESULTS / f"bench-{stamp}.json",
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "args": vars(args) | {"work": str(args.work)},
        },
    )
    print(f"{'figure':<48} {'value':>14}  note")
    try:
        with FakeEmbeddingServer(GPU_MODEL) as server:
            best = server_ceiling(results, server)
            if "b" not in skip:
                end_to_end(results, args.documents, server, best)
            if args.memory_sizes and "f" not in skip:
                sizes = [int(s) for s in args.memory_sizes.split(",")]
                memory(results, sizes, server.url, args.rerun_documents)
            if "i" not in skip:
                parts = set(args.paths.split(","))
                dagster_paths(
                    results, args.paths_documents, server, best, args.edits, parts, args.documents
                )
            if args.large_documents and "h" not in skip:
                large_run(results, args.large_documents, server, best)
        if "k" not in skip:
            default_settings(results, args.paths_documents)
        if "c" not in skip:
            pipeline_ceiling(results, args.documents)
        if "d" not in skip:
            local_provider(results, args.local_texts)
        if "e" not in skip:
            no_change_rerun(results, args.rerun_documents)
    finally:
        if not args.keep_homes:
            remove_homes(_HOMES, wait_s=10, stop=True)
    results.machine["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results.save()
    print(f"\nwritten {results.out}")


if __name__ == "__main__":
    main()
