"""Ingest runs against the fake embedding server: faults, poison input, and an outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.corpus import generate_corpus
from ingest_assets.settings import IngestSettings
from ingest_assets.store.status import source_status
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.fake_embedding_server import FakeEmbeddingServer, FakeServerConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-corpus") / "corpus"
    generate_corpus(root, documents=120, seed=3)
    return root


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(FakeServerConfig(retry_after_s=0.05)) as server:
        yield server


def server_settings(settings: IngestSettings, server: FakeEmbeddingServer, provider: str):
    return settings.with_embedding(
        provider=provider,
        model="fake-model",
        url=server.url,
        backoff_s=0.02,
        timeout_s=5.0,
        max_attempts=10,
        batch_size=16,
    )


def vector_counts(db) -> tuple[int, int]:
    """(distinct live chunk texts, vector rows) for the fake model."""
    table = vector_table_name("fake-model")
    with db.connect() as conn:
        row = conn.execute(
            "SELECT (SELECT count(DISTINCT c.text_hash) FROM chunks c JOIN documents d "
            " ON d.id = c.document_id WHERE d.deleted_at IS NULL), "
            f"(SELECT count(*) FROM {table})"
        ).fetchone()
    return row[0], row[1]


def step_metadata(instance, asset: str) -> list[dict]:
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    return [r.asset_materialization.metadata for r in records]


@pytest.mark.parametrize("provider", ["openai", "tei", "ollama"])
def test_faulty_server_still_embeds_every_distinct_text_exactly_once(
    ingest, settings, db, instance, server, corpus, provider
):
    server.configure(rate_503=0.2, rate_429=0.05, rate_drop=0.03, seed=11)

    summary = ingest(corpus, settings=server_settings(settings, server, provider))

    assert summary.success, summary.error
    distinct, vectors = vector_counts(db)
    assert distinct == vectors == summary.totals["texts_embedded"] > 0
    assert server.stats()["distinct_texts"] >= distinct
    retries = step_metadata(instance, "embeddings")[0]["retries"].value
    assert retries.get("503", 0) > 0


def test_poison_document_is_quarantined_and_its_shard_still_embedded(
    ingest, settings, db, server, corpus, tmp_path
):
    server.configure(poison_marker="ZZPOISONZZ")
    folder = tmp_path / "c"
    folder.mkdir()
    for i in range(12):
        (folder / f"note-{i}.md").write_text(f"# Note {i}\n\nHarmless text number {i}.\n")
    (folder / "bad.md").write_text("# Bad\n\nThis paragraph carries ZZPOISONZZ inside.\n")

    summary = ingest(folder, settings=server_settings(settings, server, "tei"))

    assert summary.success, summary.error
    reasons = dict(summary.quarantined)
    assert list(reasons) == ["bad.md"]
    assert "bad.md" in reasons["bad.md"] and "forbidden marker" in reasons["bad.md"]
    distinct, vectors = vector_counts(db)
    assert distinct == vectors == 12
    with db.connect() as conn:
        (status,) = source_status(conn, vector_table_name("fake-model"), "any")
    assert status.quarantined == 1 and status.pending_embedding == 0


def test_outage_fails_the_run_and_a_rerun_embeds_only_what_is_missing(
    ingest, settings, db, server, corpus
):
    on = server_settings(settings, server, "openai")
    first = ingest(corpus, settings=on)
    assert first.success
    half_corpus_change = sorted(corpus.rglob("*.md"))[:10]
    originals = {p: p.read_text() for p in half_corpus_change}
    try:
        for path in half_corpus_change:
            path.write_text(path.read_text() + "\n\nAn added closing paragraph about outages.\n")
        server.configure(rate_503=1.0)
        down = ingest(corpus, settings=on.with_embedding(max_attempts=3))

        assert not down.success
        assert "failed 3 times, last with 503" in down.error
        distinct, vectors_before = vector_counts(db)
        assert distinct > vectors_before - first.totals["texts_embedded"]

        server.configure(rate_503=0.0)
        server.reset_stats()
        again = ingest(corpus, settings=on)

        assert again.success
        distinct, vectors = vector_counts(db)
        assert vectors == vectors_before + again.totals["texts_embedded"]
        embedded_now = server.stats()["texts_embedded"]
        assert embedded_now == again.totals["texts_embedded"] + 2  # +2: the dimension probe
        assert again.totals["texts_embedded"] <= 2 * len(half_corpus_change) + 10
    finally:
        for path, text in originals.items():
            path.write_text(text)


def test_unfinished_partitions_are_exactly_the_failed_ones(
    ingest, settings, instance, server, corpus
):
    from ingest_assets.backfill import unfinished_partitions
    from ingest_assets.defs.partitions import partition_key

    on = server_settings(settings, server, "tei")
    assert unfinished_partitions(instance, "docs", settings.shards) == [
        partition_key("docs", s) for s in range(settings.shards)
    ]
    assert ingest(corpus, settings=on).success
    assert unfinished_partitions(instance, "docs", settings.shards) == []

    (corpus / "late-addition.md").write_text("# Late\n\nA document written during an outage.\n")
    try:
        server.configure(rate_503=1.0)
        failed = ingest(corpus, settings=on.with_embedding(max_attempts=2))
        assert not failed.success
        assert unfinished_partitions(instance, "docs", settings.shards) == [
            partition_key("docs", s) for s in range(settings.shards)
        ]  # one ranged run: every shard in it failed
        server.configure(rate_503=0.0)
        assert ingest(corpus, settings=on).success
        assert unfinished_partitions(instance, "docs", settings.shards) == []
    finally:
        (corpus / "late-addition.md").unlink()


def test_api_key_never_reaches_dagster_events_config_or_errors(
    ingest, settings, instance, server, tmp_path, monkeypatch
):
    secret = "sk-test-0123456789-SECRET"
    monkeypatch.setenv("INGEST_EMBEDDING_API_KEY", secret)
    keyed = server_settings(settings, server, "openai").with_embedding(
        api_key=secret, max_attempts=2
    )
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nFine text.\n")
    server.configure(poison_marker="Fine")  # the server rejects it, quoting its error

    summary = ingest(folder, settings=keyed)
    server.configure(poison_marker="", rate_503=1.0)
    (folder / "b.md").write_text("# B\n\nMore text.\n")
    failed = ingest(folder, settings=keyed)

    assert not failed.success
    texts = [str(summary.quarantined), str(failed.error)]
    for run_id in (summary.run_id, failed.run_id):
        run = instance.get_run_by_id(run_id)
        texts.append(repr(run.run_config))
        texts.append(repr(run.tags))
        texts += [repr(entry) for entry in instance.all_logs(run_id)]
    assert all(secret not in text for text in texts)
    assert any("embedding" in text for text in texts)  # the texts checked are the real ones


def test_a_later_step_starts_at_the_batch_size_an_earlier_one_settled_on(
    ingest, settings, db, tmp_path
):
    # One request at a time with a fixed cost each: larger batches win, up to 8 times the
    # configured 8 texts (slow enough that the server, not this machine, bounds the rate).
    config = FakeServerConfig(base_latency_ms=40, per_item_ms=0.05, capacity=1, fast_vectors=True)
    with FakeEmbeddingServer(config) as server:
        configured = server_settings(settings, server, "openai").with_embedding(batch_size=8)
        first, second = tmp_path / "first", tmp_path / "second"
        generate_corpus(first, documents=400, seed=5)
        generate_corpus(second, documents=40, seed=6)

        assert ingest(first, "first", settings=configured).success
        with db.connect() as conn:
            (learned,) = conn.execute(
                "SELECT learned_batch FROM embedding_models WHERE name = 'fake-model'"
            ).fetchone()
        assert learned["items"] == 64 and learned["key"]["url"] == server.url
        server.reset_stats()
        summary = ingest(second, "second", settings=configured)
        requests = server.stats()["embed_requests"] - 2  # the dimension probe, asked twice

    assert summary.success, summary.error
    texts = summary.totals["texts_embedded"]
    # From the configured 8, climbing would take 16 requests at 8 texts before any doubling.
    assert texts > 200 and requests <= -(-texts // 64) + 1, (texts, requests)
