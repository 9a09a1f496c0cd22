"""The sources and change sensors evaluated against a real instance and database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ingest_assets import fanout
from ingest_assets.defs.partitions import SOURCES_PARTITIONS_NAME, partition_key
from ingest_assets.lib.fingerprints import shard_digests
from ingest_assets.lib.hashing import shard_of
from ingest_assets.pipeline.changes import StoredFingerprint, changed_shards, classify, gone
from ingest_assets.sources import DocumentRef, notifications
from ingest_assets.sources.registry import SourceRecord, save_registry
from ingest_assets.store.documents import KnownDocument
from ingest_assets_tests.sensing import RANGE, evaluate, requested_shards


def folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_sources_sensor_adds_new_sources_and_requests_their_first_run(settings, instance, tmp_path):
    docs = folder(tmp_path / "docs", {"a.md": "# A\n\nalpha"})
    save_registry(settings.sources_path, [SourceRecord("docs", "folder", str(docs))])

    result = evaluate(settings, instance, "sources_sensor")

    (added,) = result.dynamic_partitions_requests
    assert list(added.partition_keys) == ["docs"]
    (request,) = result.run_requests
    assert (request.tags[RANGE[0]], request.tags[RANGE[1]]) == (
        partition_key("docs", 0),
        partition_key("docs", settings.shards - 1),
    )


def test_sources_sensor_fans_a_large_new_source_out_per_the_plan(settings, instance, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(fanout.LARGE_SOURCE_DOCUMENTS):
        (docs / f"{i}.md").write_text(f"document {i}")
    save_registry(settings.sources_path, [SourceRecord("docs", "folder", str(docs))])

    result = evaluate(settings, instance, "sources_sensor")

    requested = [(r.tags[RANGE[0]], r.tags[RANGE[1]]) for r in result.run_requests]
    planned = fanout.first_ingestion(settings.shards, fanout.LARGE_SOURCE_DOCUMENTS)
    assert len(planned) > 1
    assert requested == [
        (partition_key("docs", first), partition_key("docs", last)) for first, last in planned
    ]
    assert {r.tags["ingest/trigger"] for r in result.run_requests} == {"new"}


def test_sources_sensor_removes_sources_dropped_from_the_registry(settings, instance, tmp_path):
    docs = folder(tmp_path / "docs", {"a.md": "# A\n\nalpha"})
    save_registry(settings.sources_path, [SourceRecord("docs", "folder", str(docs))])
    instance.add_dynamic_partitions(SOURCES_PARTITIONS_NAME, ["docs", "old"])

    result = evaluate(settings, instance, "sources_sensor")

    (removed,) = result.dynamic_partitions_requests
    assert list(removed.partition_keys) == ["old"]
    assert result.run_requests == []


def test_a_source_dropped_from_the_registry_leaves_the_index(
    ingest, settings, db, instance, tmp_path
):
    docs = folder(tmp_path / "docs", {"a.md": "# A\n\nalpha words", "b.md": "# B\n\nbeta"})
    keep = folder(tmp_path / "keep", {"c.md": "# C\n\ngamma words"})
    ingest(docs)
    ingest(keep, name="keep")
    save_registry(settings.sources_path, [SourceRecord("keep", "folder", str(keep))])

    result = evaluate(settings, instance, "sources_sensor")

    (removed,) = result.dynamic_partitions_requests
    assert list(removed.partition_keys) == ["docs"]
    with db.connect() as conn:
        by_source = dict(
            conn.execute(
                "SELECT d.source, count(c.id) FROM documents d "
                "LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.source"
            ).fetchall()
        )
        sources = [r[0] for r in conn.execute("SELECT name FROM sources").fetchall()]
    assert by_source == {"keep": 1}  # docs' documents and chunks are gone, keep's stay
    assert sources == ["keep"]


def test_change_sensor_requests_only_changed_shards(ingest, settings, instance, tmp_path):
    names = [f"doc-{i}.md" for i in range(12)]
    docs = folder(tmp_path / "docs", {n: f"# {n}\n\ntext of {n}" for n in names})
    ingest(docs)

    quiet = evaluate(settings, instance, "changes_sensor")
    assert quiet.run_requests == []

    (docs / "new-file.md").write_text("# New\n\nfresh words")
    changed = evaluate(settings, instance, "changes_sensor", quiet.cursor)

    shard = shard_of("new-file.md", settings.shards)
    (request,) = changed.run_requests
    assert request.tags[RANGE[0]] == request.tags[RANGE[1]] == partition_key("docs", shard)

    again = evaluate(settings, instance, "changes_sensor", changed.cursor)
    assert again.run_requests == []  # the same listing: its run was requested already


def test_a_change_to_every_shard_is_split_into_runs_of_the_plans_size(
    ingest, settings, instance, tmp_path
):
    wide = settings.model_copy(update={"shards": 2 * fanout.SHARDS_PER_RUN + 3})
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(6)})
    ingest(docs, settings=wide)
    for i in range(400):  # enough new documents to touch every shard
        (docs / f"new-{i}.txt").write_text(f"new text {i}")

    result = evaluate(wide, instance, "changes_sensor")

    spans = [
        int(r.tags[RANGE[1]].split("|")[1]) - int(r.tags[RANGE[0]].split("|")[1]) + 1
        for r in result.run_requests
    ]
    assert spans == [fanout.SHARDS_PER_RUN, fanout.SHARDS_PER_RUN, 3]


def test_change_sensor_sees_deletions_and_edits(ingest, settings, instance, tmp_path):
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(6)})
    ingest(docs)
    (docs / "d1.txt").unlink()
    (docs / "d2.txt").write_text("edited text, longer than before")

    result = evaluate(settings, instance, "changes_sensor")

    assert requested_shards(result) == {
        shard_of("d1.txt", settings.shards),
        shard_of("d2.txt", settings.shards),
    }
    assert json.loads(result.cursor).keys() == {"docs"}


def test_digests_ignore_order():
    base = [("a", 0, "1:1"), ("b", 0, "2:2"), ("c", 1, "3:3")]
    assert shard_digests(base) == shard_digests(list(reversed(base)))
    assert shard_digests(base) != shard_digests([("a", 0, "1:2"), *base[1:]])


def test_one_comparison_sees_every_kind_of_change_and_only_changes():
    def ref(doc_id: str, fingerprint: str | None) -> DocumentRef:
        return DocumentRef(doc_id, f"file:///{doc_id}", fingerprint, ".md")

    shards = 64
    stored = {
        "same.md": StoredFingerprint("1:1"),
        "edited.md": StoredFingerprint("2:2"),
        "removed.md": StoredFingerprint("3:3"),
        "failed.md": KnownDocument("4:4", None, deleted=False, quarantined=False, attempts=1),
        "unreadable/kept.md": StoredFingerprint("5:5"),
        "deleted.md": KnownDocument("6:6", None, deleted=True, quarantined=False, attempts=0),
    }
    listed = [
        ref("same.md", "1:1"),
        ref("edited.md", "2:3"),
        ref("failed.md", "4:4"),
        ref("added.md", "7:7"),
        ref("deleted.md", "6:6"),  # back after a deletion
    ]
    assert [classify(r, stored.get(r.doc_id)) for r in listed] == [
        "unchanged", "suspect", "retry", "new", "new"
    ]  # fmt: skip
    assert classify(ref("same.md", None), stored["same.md"]) == "suspect"
    assert gone([r.doc_id for r in listed], stored, ["unreadable/"]) == ["removed.md"]
    expected = {shard_of(d, shards) for d in ("edited.md", "added.md", "deleted.md", "removed.md")}
    assert changed_shards(listed, stored, ["unreadable/"], shards) == sorted(expected)
    assert changed_shards([ref("same.md", "1:1")], {"same.md": stored["same.md"]}, [], shards) == []


def test_a_folder_returning_to_an_earlier_listing_gets_a_new_run_key(
    ingest, settings, instance, tmp_path
):
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(4)})
    ingest(docs)
    extra = docs / "extra.txt"
    extra.write_text("extra words")
    added = evaluate(settings, instance, "changes_sensor")
    ingest(docs)
    extra.unlink()
    deleted = evaluate(settings, instance, "changes_sensor", added.cursor)
    ingest(docs)
    extra.write_text("extra words, again")
    readded = evaluate(settings, instance, "changes_sensor", deleted.cursor)
    ingest(docs)
    extra.unlink()
    deleted_again = evaluate(settings, instance, "changes_sensor", readded.cursor)

    keys = [r.run_requests[0].run_key for r in (added, deleted, readded, deleted_again)]
    assert len(set(keys)) == 4


def test_change_sensor_waits_for_a_sources_unfinished_run(ingest, settings, instance, tmp_path):
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(4)})
    ingest(docs)
    (docs / "new.txt").write_text("new")
    running = dg.DagsterRun(
        job_name="ingest_job", run_id="running-run", status=dg.DagsterRunStatus.STARTED,
        tags={"ingest/source": "docs"},
    )  # fmt: skip
    instance.add_run(running)

    waiting = evaluate(settings, instance, "changes_sensor")
    assert waiting.run_requests == []

    instance.report_run_failed(running)
    after = evaluate(settings, instance, "changes_sensor", waiting.cursor)
    assert len(after.run_requests) == 1


@pytest.fixture
def watching() -> Iterator[None]:
    yield
    notifications.stop_all()


def wait_for_requests(settings, instance, cursor: str | None = None) -> dg.SensorResult:
    """Tick the notify sensor until it requests runs (the watcher's events arrive after a
    debounce): at most 40 ticks, 0.25 s apart."""
    for _ in range(40):
        result = evaluate(settings, instance, "notify_sensor", cursor)
        if result.run_requests:
            return result
        cursor = result.cursor
        time.sleep(0.25)
    raise AssertionError("the notify sensor never woke")


def test_a_file_saved_in_a_watched_folder_wakes_the_notify_sensor(
    watching, ingest, settings, instance, tmp_path
):
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(4)})
    ingest(docs)
    assert evaluate(settings, instance, "notify_sensor").run_requests == []  # starts watching

    (docs / "fresh.md").write_text("# Fresh\n\njust saved")
    woken = wait_for_requests(settings, instance)

    (request,) = woken.run_requests
    assert request.tags["ingest/trigger"] == "notify"
    assert requested_shards(woken) == {shard_of("fresh.md", settings.shards)}
    time.sleep(0.5)
    assert evaluate(settings, instance, "notify_sensor", woken.cursor).run_requests == []


def test_a_file_saved_before_the_notify_sensor_first_looks_is_found_at_its_first_tick(
    watching, ingest, settings, instance, tmp_path
):
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(4)})
    ingest(docs)
    (docs / "early.md").write_text("# Early\n\nsaved before anything watched")

    first = evaluate(settings, instance, "notify_sensor")  # starts watching, and compares
    assert requested_shards(first) == {shard_of("early.md", settings.shards)}
    assert first.run_requests[0].tags["ingest/trigger"] == "notify"


def test_a_folder_woken_during_a_run_is_compared_once_the_run_ends(
    watching, ingest, settings, instance, tmp_path
):
    docs = folder(tmp_path / "docs", {f"d{i}.txt": f"text {i}" for i in range(4)})
    ingest(docs)
    evaluate(settings, instance, "notify_sensor")
    running = dg.DagsterRun(
        job_name="ingest_job", run_id="running-run", status=dg.DagsterRunStatus.STARTED,
        tags={"ingest/source": "docs"},
    )  # fmt: skip
    instance.add_run(running)

    (docs / "d1.txt").unlink()
    cursor = None
    for _ in range(40):  # until the deletion's event has been drained
        result = evaluate(settings, instance, "notify_sensor", cursor)
        assert result.run_requests == []
        cursor = result.cursor
        if json.loads(cursor) == ["docs"]:
            break
        time.sleep(0.25)
    assert json.loads(cursor) == ["docs"]

    instance.report_run_failed(running)
    after = evaluate(settings, instance, "notify_sensor", cursor)
    assert requested_shards(after) == {shard_of("d1.txt", settings.shards)}
    assert json.loads(after.cursor) == []
