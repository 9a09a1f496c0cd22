"""A table source under the real daemon: with the change sensor's polling interval at ten
minutes, a NOTIFY on the source's channel gets the new row ingested and searchable within
seconds, through the notify sensor's held LISTEN connection in the code location's process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from ingest_assets.lib.hashing import shard_of
from ingest_assets_tests.e2e.conftest import (
    RANGE_START,
    Stack,
    partition_key,
    report,
    running_stack,
    stack_env,
    tag,
)
from ingest_assets_tests.notes_database import notes_database

pytestmark = pytest.mark.slow

SHARDS = 4
POLL_INTERVAL_S = 600  # the change sensor would not look again within this test
NOTIFY_DEADLINE_S = 30
NOTES = [
    ("Onboarding", "New hires receive a laptop and a badge on their first morning."),
    ("Expenses", "Travel receipts are refunded within two weeks of submission."),
    ("Runbook", "Page the on-call engineer when the error rate doubles."),
]


@pytest.fixture(scope="module")
def notes_dsn(pg_url: str) -> Iterator[str]:
    with notes_database(pg_url, NOTES) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, notes_dsn: str) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("notify")
    env = stack_env(
        root / "home",
        INGEST_EMBEDDING_PROVIDER="hashing",
        INGEST_EMBEDDING_MODEL="hashing-384",
        INGEST_SHARDS=str(SHARDS),
        INGEST_SENSOR_INTERVAL_S=str(POLL_INTERVAL_S),
        NOTES_DSN=notes_dsn,
    )
    with running_stack(env, root / "dev.log") as stack:
        yield stack


def test_a_notify_gets_a_new_row_searchable_within_seconds(stack: Stack, notes_dsn: str):
    stack.cli(
        "source", "add", "notes", "public.notes", "--kind", "postgres_table",
        "-o", "dsn_env=NOTES_DSN", "-o", "notify_channel=notes_changed",
    )  # fmt: skip
    stack.cli("run", "notes")
    assert stack.status()["notes"]["documents"] == len(NOTES)
    registered = time.time()

    # The notify sensor starts listening at its first tick that sees the source.
    stack.wait_for(
        "a notify_sensor tick after the source was registered",
        lambda: next(
            (t for t in stack.ticks("notify_sensor") if t["timestamp"] > registered), None
        ),
        timeout=60,
        interval=0.5,
    )
    known = {r["runId"] for r in stack.wait_idle()}

    with psycopg.connect(notes_dsn, autocommit=True) as conn:
        new_id = conn.execute(
            "INSERT INTO notes (title, body) VALUES ('Volcanoes', "
            "'Molten basalt magma erupts from shield volcanoes as lava.') RETURNING id"
        ).fetchone()[0]
        conn.execute("NOTIFY notes_changed")
    notified = time.monotonic()

    run = stack.wait_new_run(known, timeout=NOTIFY_DEADLINE_S)
    requested_s = time.monotonic() - notified
    assert tag(run, "dagster/sensor_name") == "notify_sensor"
    assert tag(run, "ingest/trigger") == "notify"
    assert tag(run, RANGE_START) == partition_key(shard_of(str(new_id), SHARDS), "notes")
    ended = stack.wait_run_ended(run["runId"])
    assert ended["status"] == "SUCCESS"
    hits = stack.search("molten basalt magma erupts shield volcanoes lava", k=1)
    searchable_s = time.monotonic() - notified
    assert hits and hits[0]["doc_id"] == str(new_id)
    report(
        f"NOTIFY -> run requested in {requested_s:.1f}s, searchable in {searchable_s:.1f}s "
        f"(change sensor polling every {POLL_INTERVAL_S}s)"
    )
    assert searchable_s < NOTIFY_DEADLINE_S + 30
