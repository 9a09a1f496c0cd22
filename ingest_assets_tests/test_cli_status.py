"""`ingest status`: vectors per model, pending work split by kind, and each source's last
Dagster run, through the CLI on the real PostgreSQL and real runs (hashing embedder)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ingest_assets.database import Database
from ingest_assets.defs.partitions import RANGE_START, SOURCE_TAG, partition_key
from ingest_assets.last_runs import LastRun, ago, last_runs, trigger_of
from ingest_assets.sources.registry import SourceRecord
from ingest_assets.store.sources import register_source
from ingest_assets_tests.conftest import cli_environment

# `ingest run` with opening `flaky.md` failing with EIO (the tests run as root, where chmod
# cannot make a file unreadable): a read failure that is retried on the next runs.
FLAKY_RUN = """
import errno, os, sys
real_open = os.open
def fake_open(path, flags, *args, **kwargs):
    if os.fspath(path).endswith(os.sep + "flaky.md"):
        raise OSError(errno.EIO, os.strerror(errno.EIO), os.fspath(path))
    return real_open(path, flags, *args, **kwargs)
os.open = fake_open
from ingest_assets.cli import main
main(sys.argv[1:])
"""


class Cli:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(
        self, *args: str, check: bool = True, script: str | None = None, model: str = "hashing-a"
    ) -> subprocess.CompletedProcess[str]:
        start = ["-c", script] if script else ["-m", "ingest_assets.cli"]
        result = subprocess.run(
            [sys.executable, *start, *args],
            env={**self.env, "INGEST_EMBEDDING_MODEL": model, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, f"ingest {' '.join(args)}:\n{result.stderr[-3000:]}"
        return result

    def status(self, model: str = "hashing-a") -> dict[str, dict[str, Any]]:
        rows = json.loads(self("status", "--json", model=model).stdout)
        return {row["source"]: row for row in rows}


@pytest.fixture
def cli(db: Database, tmp_path: Path) -> Iterator[Cli]:
    """The pipeline's tables in this test's schema, Dagster's storage in a database of its own
    (no runs of other tests), the hashing embedder, and no stage retries."""
    with cli_environment(
        db,
        tmp_path / "home",
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_SHARDS="1",  # one run per `ingest run`: the last run is that run
    ) as environment:
        yield Cli(environment)


def write_corpus(root: Path) -> None:
    root.mkdir()
    for name, text in {
        "owls.md": "# Owls\n\nOwls hunt at night and swallow their prey whole.",
        "bees.md": "# Bees\n\nBees dance to tell the hive where the flowers are.",
        "moss.md": "# Moss\n\nMoss grows on the shady side of stones and trees.",
    }.items():
        (root / name).write_text(text + "\n")


def test_models_pending_work_failed_reads_and_the_last_run(cli: Cli, tmp_path: Path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    cli("run", str(corpus), "--name", "docs")
    cli("run", str(corpus), "--name", "docs", model="hashing-b")
    (corpus / "ferns.md").write_text("# Ferns\n\nFerns spread by spores, not seeds.\n")
    (corpus / "flaky.md").write_text("# Ravens\n\nRavens solve puzzles.\n")
    failed = cli(
        "run", str(corpus), "--name", "docs",
        script=FLAKY_RUN, check=False, model="hashing-b",
    )  # fmt: skip
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr[-3000:]

    row = cli.status(model="hashing-b")["docs"]

    chunks = row["chunks"]
    assert chunks >= 3
    # hashing-a, built first, serves; hashing-b is being built beside it.
    assert (row["serving_model"], row["building_model"]) == ("hashing-a", "hashing-b")
    assert row["vectors_by_model"] == {"hashing-a": chunks, "hashing-b": chunks}
    assert row["chunks_with_vector"] == chunks and row["pending_embedding"] == 0
    # ferns.md was read in the failed run, whose later stages never ran; flaky.md failed once.
    assert row["documents"] == 5
    assert row["pending_chunking"] == 1
    assert row["failed_reads"] == 1 and row["quarantined"] == 0
    last = row["last_run"]
    assert last["status"] == "FAILURE" and last["trigger"] == "cli"
    assert last["ended_at"] and last["started_at"] <= last["ended_at"]

    # A model with no vectors yet is listed with none; search is still served by hashing-a.
    fresh = cli.status(model="hashing-c")["docs"]
    assert fresh["vectors_by_model"] == {"hashing-a": chunks, "hashing-b": chunks, "hashing-c": 0}
    assert fresh["chunks_with_vector"] == chunks and fresh["pending_embedding"] == 0

    shown = cli("status", model="hashing-b").stdout
    for text in ("hashing-a *", "hashing-b", "documents to chunk", "failed reads", "FAILURE"):
        assert text in shown, shown
    assert last["run_id"][:8] in shown and "ended" in shown and "ago" in shown


def test_a_source_without_runs_and_an_empty_dagster_storage(cli: Cli, db: Database):
    with db.connect() as conn:
        register_source(conn, SourceRecord("quiet", "folder", "/nowhere"))
        conn.commit()

    row = cli.status()["quiet"]
    shown = cli("status").stdout

    assert row["last_run"] is None and row["documents"] == row["chunks"] == 0
    assert row["vectors_by_model"] == {"hashing-a": 0}
    assert "no runs yet" in shown and "no table" in shown


def test_last_run_includes_backfills_that_only_carry_partition_tags():
    def add_run(tags: dict[str, str]) -> str:
        run = dg.DagsterRun(job_name="ingest_job", tags=tags, status=dg.DagsterRunStatus.SUCCESS)
        instance.add_run(run)
        return run.run_id

    with dg.instance_for_test() as instance:
        add_run({SOURCE_TAG: "docs", "ingest/trigger": "cli"})
        newest = add_run({RANGE_START: partition_key("docs", 1), "dagster/backfill": "abc"})
        other = add_run({SOURCE_TAG: "docs2", "ingest/trigger": "change"})
        ui = add_run({"dagster/partition": partition_key("ui", 0)})

        found = last_runs(instance, ["docs", "docs2", "ui", "never"], shards=2)

    assert found["docs"] is not None and found["docs"].run_id == newest
    assert found["docs"].trigger == "backfill"
    assert found["docs2"] is not None and (found["docs2"].run_id, found["docs2"].trigger) == (
        other,
        "change",
    )
    assert found["ui"] is not None and (found["ui"].run_id, found["ui"].trigger) == (ui, "manual")
    assert found["never"] is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-2, "0 s ago"), (59, "59 s ago"), (60, "1 min ago"), (3599, "59 min ago"),
     (7300, "2 h ago"), (3 * 86400 + 5, "3 d ago")],
)  # fmt: skip
def test_ago(seconds: float, text: str):
    assert ago(seconds) == text


@pytest.mark.parametrize(
    ("tags", "trigger"),
    [
        ({"ingest/trigger": "new", "dagster/sensor_name": "sources_sensor"}, "new"),
        ({"dagster/backfill": "x"}, "backfill"),
        ({"dagster/parent_run_id": "x"}, "retry"),
        ({"dagster/sensor_name": "s"}, "sensor"),
        ({}, "manual"),
    ],
)
def test_trigger_of(tags: dict[str, str], trigger: str):
    assert trigger_of(tags) == trigger


def test_when_describes_the_runs_latest_moment():
    now = time.time()
    run = LastRun("r", "STARTED", "cli", created_at=now - 600, started_at=now - 180, ended_at=None)
    assert run.when(now) == "started 3 min ago"
    assert LastRun("r", "QUEUED", "cli", now - 60, None, None).when(now) == "queued 1 min ago"
