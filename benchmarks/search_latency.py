"""`ingest search` latency from a cold process, with the default (local) model.

Ingests samples/corpus once into a home under --work (kept: a second call reuses it), then
times `ingest search` as a new process each time: first with no ONNX export cached (that
run makes it), then --runs more. The home's embedded PostgreSQL is started and held by this
process, as `ingest dev` would hold it, so the server's start is not counted. Target: a
median of at most 1.5 s on an idle machine (the load average is printed with the figures).

    python -m benchmarks.search_latency [--work DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest_assets.database import embedded_server_url
from ingest_assets.testing.environment import isolated_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
QUERY = "why does the sea rise and fall twice a day"


def ingest(*args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds of one `ingest` command in a new process, and its result."""
    command = [sys.executable, "-m", "ingest_assets.cli", *args]
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"ingest {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds, result


def load() -> str:
    return "load " + " ".join(f"{n:.2f}" for n in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the home (default: a new one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--query", default=QUERY)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="search-latency-"))
    home = work.resolve() / "home"
    env = isolated_environment(INGEST_HOME=str(home), HF_HUB_OFFLINE="1")
    embedded_server_url(home / "pg")  # held by this process until it exits
    if not (home / "indexed").exists():
        seconds, _ = ingest(
            "run", str(REPO_ROOT / "samples" / "corpus"), "--name", "samples", env=env
        )
        (home / "indexed").touch()
        print(f"indexed samples/corpus in {seconds:.1f}s")

    shutil.rmtree(home / "models", ignore_errors=True)  # the first search makes the export
    first, result = ingest("search", args.query, "-k", "3", env=env)
    notes = " ".join(result.stderr.split())[:160]
    print(f"first search (no cached export): {first:.2f}s [{load()}] {notes}")
    times = []
    for _ in range(args.runs):
        seconds, result = ingest("search", args.query, "-k", "3", env=env)
        times.append(seconds)
    print(
        f"cold search x{args.runs}: median {statistics.median(times):.2f}s, "
        f"min {min(times):.2f}s, max {max(times):.2f}s [{load()}]"
    )
    print("top hit:", result.stdout.splitlines()[0] if result.stdout else "none")


if __name__ == "__main__":
    main()
