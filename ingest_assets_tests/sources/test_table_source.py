"""The PostgreSQL table source against a second, real database in the embedded server: first
ingest, then a changed, a deleted and an added row, by `ingest run`, by the change sensor
(with its one-row change token) and by a NOTIFY on the configured channel."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from ingest_assets.lib.hashing import shard_of
from ingest_assets.sources import notifications
from ingest_assets.sources.registry import SourceRecord, open_source
from ingest_assets.sources.table import TableSource
from ingest_assets_tests.notes_database import notes_database
from ingest_assets_tests.sensing import evaluate, requested_shards

NOTES = [
    ("Onboarding checklist", "# Onboarding\n\nNew hires get a laptop and a badge on day one."),
    ("Expense policy", "Travel expenses are refunded within two weeks of the receipt."),
    ("Incident runbook", "## Paging\n\nPage the on-call engineer when the error rate doubles."),
]


@pytest.fixture
def notes_dsn(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database with a `notes` table; its DSN in NOTES_DSN, as an operator sets it."""
    with notes_database(pg_url, NOTES) as dsn:
        monkeypatch.setenv("NOTES_DSN", dsn)
        yield dsn
        notifications.stop_all()


def notes_source(**options: object) -> SourceRecord:
    return SourceRecord(
        "notes", "postgres_table", "public.notes", {"dsn_env": "NOTES_DSN", **options}
    )


def execute(dsn: str, query: str, *params: object) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query, params)  # type: ignore[arg-type]


def documents(db) -> dict[str, tuple[str | None, str | None, bool]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT doc_id, title, body, deleted_at IS NOT NULL FROM documents"
            " WHERE source = 'notes'"
        ).fetchall()
    return {doc_id: (title, body, deleted) for doc_id, title, body, deleted in rows}


def test_rows_are_ingested_then_changes_deletions_and_additions_follow(ingest, db, notes_dsn):
    first = ingest(notes_source())

    assert first.success, first.error
    assert first.totals["documents_new"] == 3
    docs = documents(db)
    assert docs["2"][0] == "Expense policy"  # the title column, not a guess from the text
    assert "two weeks" in docs["2"][1]

    execute(notes_dsn, "UPDATE notes SET body = 'Refunds take a month now.', "
            "updated_at = clock_timestamp() WHERE id = 2")  # fmt: skip
    execute(notes_dsn, "DELETE FROM notes WHERE id = 3")
    execute(notes_dsn, "INSERT INTO notes (title, body) VALUES ('Parking', 'Level -2 is ours.')")
    second = ingest(notes_source())

    t = second.totals
    assert (t["documents_new"], t["documents_changed"], t["documents_deleted"]) == (1, 1, 1)
    assert t["documents_unchanged"] == 1
    docs = documents(db)
    assert "a month" in docs["2"][1] and docs["3"][2] is True and "Level -2" in docs["4"][1]


def test_unchanged_rows_are_not_read_again(ingest, db, notes_dsn):
    ingest(notes_source())
    # A new body without a new updated_at is invisible by design: the timestamp is the contract.
    execute(notes_dsn, "UPDATE notes SET body = 'sneaky edit' WHERE id = 1")

    again = ingest(notes_source())

    assert again.totals["documents_unchanged"] == 3
    assert "laptop" in documents(db)["1"][1]


def test_a_query_source_reads_only_what_it_selects(ingest, db, notes_dsn):
    execute(notes_dsn, "UPDATE notes SET archived = true WHERE id = 1")
    record = notes_source(query="SELECT id, title, body, updated_at FROM notes WHERE NOT archived")
    ingest(record)
    assert set(documents(db)) == {"2", "3"}

    execute(notes_dsn, "UPDATE notes SET archived = true, updated_at = now() WHERE id = 2")
    ingest(record)
    assert documents(db)["2"][2] is True  # archived: no longer selected, so deleted


def test_change_sensor_uses_the_change_token_and_finds_changed_shards(
    ingest, settings, instance, notes_dsn
):
    ingest(notes_source())
    quiet = evaluate(settings, instance, "changes_sensor")
    assert quiet.run_requests == []

    execute(notes_dsn, "UPDATE notes SET body = 'changed', updated_at = clock_timestamp() "
            "WHERE id = 1")  # fmt: skip
    execute(notes_dsn, "DELETE FROM notes WHERE id = 3")
    changed = evaluate(settings, instance, "changes_sensor", quiet.cursor)
    assert requested_shards(changed) == {
        shard_of("1", settings.shards),
        shard_of("3", settings.shards),
    }

    ingest(notes_source())
    execute(notes_dsn, "INSERT INTO notes (title, body) VALUES ('New', 'a new note')")
    added = evaluate(settings, instance, "changes_sensor", changed.cursor)
    assert requested_shards(added) == {shard_of("4", settings.shards)}


def test_change_token_moves_on_every_kind_of_change(notes_dsn):
    source = open_source(notes_source())
    assert isinstance(source, TableSource)
    try:
        tokens = [source.change_token()]
        execute(notes_dsn, "UPDATE notes SET updated_at = clock_timestamp() WHERE id = 1")
        tokens.append(source.change_token())
        execute(notes_dsn, "DELETE FROM notes WHERE id = 2")
        tokens.append(source.change_token())
        # A delete and an insert that keep the count and the newest timestamp alike.
        execute(notes_dsn, "INSERT INTO notes (id, title, body, updated_at) "
                "SELECT 99, 'x', 'y', updated_at FROM notes WHERE id = 3")  # fmt: skip
        execute(notes_dsn, "DELETE FROM notes WHERE id = 3")
        tokens.append(source.change_token())
        assert source.change_token() == tokens[-1]
    finally:
        source.close()
    assert len(set(tokens)) == 4


def test_a_notify_on_the_channel_wakes_the_notify_sensor(ingest, settings, instance, notes_dsn):
    ingest(notes_source(notify_channel="notes_changed"))

    listening = evaluate(settings, instance, "notify_sensor")  # starts to LISTEN
    assert listening.run_requests == []

    execute(notes_dsn, "INSERT INTO notes (title, body) VALUES ('Fresh', 'just written')")
    assert evaluate(settings, instance, "notify_sensor").run_requests == []  # no NOTIFY yet

    execute(notes_dsn, "NOTIFY notes_changed, '4'")
    woken = evaluate(settings, instance, "notify_sensor")
    (request,) = woken.run_requests
    assert request.tags["ingest/trigger"] == "notify"
    assert requested_shards(woken) == {shard_of("4", settings.shards)}
    assert evaluate(settings, instance, "notify_sensor").run_requests == []  # drained


def test_misconfigured_table_sources_fail_with_the_reason(ingest, notes_dsn, monkeypatch):
    monkeypatch.delenv("NOTES_DSN")
    unset = ingest(notes_source())
    assert not unset.success
    assert "environment variable NOTES_DSN" in (unset.error or "")

    monkeypatch.setenv("NOTES_DSN", notes_dsn)
    wrong = ingest(notes_source(text_column="content"))
    assert not wrong.success
    assert "column q.content does not exist" in (wrong.error or "")

    with pytest.raises(ValueError, match="source 'notes': invalid options"):
        open_source(SourceRecord("notes", "postgres_table", "notes", {"dsn": "postgres://x"}))


def test_the_dsn_never_reaches_the_registry_or_the_pipeline_database(
    ingest, db, notes_dsn, settings
):
    ingest(notes_source())
    registry_text = settings.sources_path.read_text()
    with db.connect() as conn:
        stored = conn.execute("SELECT options::text FROM sources").fetchall()
        uris = [r[0] for r in conn.execute("SELECT uri FROM documents")]
    assert "NOTES_DSN" in registry_text and notes_dsn not in registry_text
    assert all(notes_dsn not in row[0] for row in stored)
    assert all(u.startswith("postgresql://") and "password" not in u for u in uris)
