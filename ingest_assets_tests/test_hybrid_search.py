"""Full-text and hybrid search: identifiers found verbatim, paraphrases still found, the
reciprocal rank fusion's order, a source's language, and deleted or quarantined documents
out of every mode."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import ingest_assets
from ingest_assets import search_api
from ingest_assets.database import Database
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.sources.registry import BUILT_IN_LANGUAGES, SourceRecord, validate_record
from ingest_assets.sql import migrations
from ingest_assets.store.search import (
    DEFAULT_MODE,
    MODES,
    Hit,
    fuse,
    names_an_identifier,
    prose_search,
    search,
    text_search,
)
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.environment import isolated_environment

DOCS = {
    "postgres/extensions.md": "# Extensions\n\nTo see which queries are slow, add "
    "pg_stat_statements to shared_preload_libraries and restart the server.\n",
    "tutorials/slow-queries.md": "# Finding slow queries\n\nSlow queries waste time. The server "
    "keeps statistics for each statement it runs once a stat extension is loaded.\n",
    "flags.md": "# Server flags\n\nStart the server with --max-connections 200 to allow more "
    "clients. A missing table raises ERRCODE_UNDEFINED_TABLE.\n",
    "tides.md": "# Tides\n\nThe moon's gravity pulls the oceans, raising two bulges of water.\n",
}


def write_docs(root: Path) -> Path:
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def ranked(db: Database, query: str, mode: str, k: int = 5) -> list[str]:
    table = vector_table_name("hashing-384")
    with db.connect() as conn:
        hits = search(conn, table, hashed_vectors([query], 384)[0], k, mode=mode, text=query)
    return [h.doc_id for h in hits]


@pytest.fixture
def indexed(ingest, db, tmp_path) -> Path:
    corpus = write_docs(tmp_path / "corpus")
    assert ingest(corpus).success
    return corpus


def test_an_identifier_written_in_one_document_ranks_it_first(indexed, db):
    for query, doc in [
        ("pg_stat_statements", "postgres/extensions.md"),
        ("--max-connections", "flags.md"),  # a leading dash is not websearch's NOT here
        ("ERRCODE_UNDEFINED_TABLE", "flags.md"),
    ]:
        assert ranked(db, query, "text") == [doc], query
        assert ranked(db, query, "hybrid")[0] == doc, query


def test_a_paraphrase_without_every_word_is_found_by_hybrid_through_any_of_its_words(indexed, db):
    query = "what does the gravity of the moon do to oceans"
    assert ranked(db, query, "text") == []  # 'simple' keeps stop words: not all in any chunk
    assert ranked(db, query, "hybrid")[0] == ranked(db, query, "vector")[0] == "tides.md"
    with db.connect() as conn:
        hits = search(conn, vector_table_name("hashing-384"), hashed_vectors([query], 384)[0],
                      5, mode="hybrid", text=query)  # fmt: skip
    assert (hits[0].vector_rank, hits[0].text_rank) == (1, 1)


def test_prose_search_needs_two_words_that_are_not_stop_words_by_stem(indexed, db):
    with db.connect() as conn:

        def found(query: str) -> list[str]:
            return [h.doc_id for h in prose_search(conn, query, 5)]

        assert found("what does the gravity of the moon do to oceans") == ["tides.md"]
        assert found("pulling bulging oceans") == ["tides.md"]  # 'pulls', 'bulges' by stem
        assert found("gravity of stars, planets and comets") == []  # one word of four
        assert found("gravity of comets") == ["tides.md"]  # of two words, one is enough
        assert found("o'brien's \\ gravitational moon") == ["tides.md"]  # quotes, a backslash
        # 'slow' and 'queries' are in two documents; the one that also has 'statistics' first
        assert found("how are slow queries found with statistics")[0] == (
            "tutorials/slow-queries.md"
        )
        assert set(found("slow queries")) == {"postgres/extensions.md", "tutorials/slow-queries.md"}
        assert found("what is it that we do to the") == []  # stop words only


def hit(doc_id: str) -> Hit:
    return Hit(0.0, "s", doc_id, f"file:///{doc_id}", 0, "", doc_id)


def test_reciprocal_rank_fusion_order_on_a_hand_made_example():
    vector = [hit("A"), hit("B"), hit("C"), hit("E")]
    text = [hit("C"), hit("D"), hit("A")]

    fused = fuse(vector, text, k=10)

    # A: 1/61 + 1/63 = C: 1/63 + 1/61, tie, same best rank: by key. D: 1/62 = B: 1/62, tie,
    # same best rank: D is in the full-text list. E: 1/64.
    assert [h.doc_id for h in fused] == ["A", "C", "D", "B", "E"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert (fused[0].vector_rank, fused[0].text_rank) == (1, 3)
    assert (fused[3].vector_rank, fused[3].text_rank) == (2, None)
    assert [h.doc_id for h in fuse(vector, text, k=2)] == ["A", "C"]
    assert fuse([], [], k=5) == []


def test_modes_and_their_default():
    assert DEFAULT_MODE in MODES == ("hybrid", "vector", "text")
    with pytest.raises(ValueError, match="unknown search mode 'fuzzy'"):
        search(None, None, None, 5, mode="fuzzy", text="x")  # type: ignore[arg-type]


def tsvector(db: Database, source: str, doc_id: str) -> tuple[str, str]:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT c.ts_config, c.tsv::text FROM chunks c JOIN documents d "
            "ON d.id = c.document_id WHERE d.source = %s AND d.doc_id = %s",
            (source, doc_id),
        ).fetchone()
    assert row is not None
    return row


def test_a_source_language_is_stored_with_its_chunks_and_used(ingest, db, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "jog.md").write_text("She was running along the river every morning.\n")
    assert ingest(folder, name="plain").success
    assert ingest(SourceRecord("stems", "folder", str(folder), {"language": "english"})).success

    plain_config, plain = tsvector(db, "plain", "jog.md")
    english_config, stemmed = tsvector(db, "stems", "jog.md")
    assert plain_config == "simple" and "'running'" in plain
    assert english_config == "english" and "'run'" in stemmed and "'running'" not in stemmed
    with db.connect() as conn:
        assert [(h.source, h.doc_id) for h in text_search(conn, "runs", 5)] == [("stems", "jog.md")]

    # Another language re-chunks the source: the same texts, so nothing is embedded again.
    again = ingest(SourceRecord("plain", "folder", str(folder), {"language": "english"}))
    assert again.success and again.totals["chunks_written"] > 0
    assert again.totals["texts_embedded"] == 0
    assert tsvector(db, "plain", "jog.md") == (english_config, stemmed)


def test_an_unknown_language_is_refused_in_one_line(ingest, db, tmp_path):
    record = SourceRecord("docs", "folder", str(tmp_path), {"language": "klingon"})
    with pytest.raises(ValueError) as refused:
        validate_record(record)
    message = str(refused.value)
    assert message.startswith("source 'docs': unknown language 'klingon'") and "\n" not in message

    # A schema-qualified custom configuration is checked against the database's pg_ts_config.
    (tmp_path / "a.md").write_text("anything\n")
    summary = ingest(SourceRecord("docs", "folder", str(tmp_path), {"language": "nowhere.conf"}))
    assert not summary.success
    assert "source 'docs': unknown language 'nowhere.conf'" in (summary.error or "")


def test_a_custom_configuration_in_the_database_is_accepted(ingest, db, tmp_path):
    with db.connect() as conn:
        conn.execute(
            sql.SQL("CREATE TEXT SEARCH CONFIGURATION {}.code (COPY = simple)").format(
                sql.Identifier(db.schema)
            )
        )
        conn.commit()
    (tmp_path / "a.md").write_text("Call os.path.join here.\n")
    language = f"{db.schema}.code"
    assert ingest(SourceRecord("code", "folder", str(tmp_path), {"language": language})).success
    assert tsvector(db, "code", "a.md")[0] == language
    assert ranked(db, "os.path.join", "text") == ["a.md"]


def test_the_built_in_languages_are_those_of_pg_ts_config(db):
    with db.connect() as conn:
        names = conn.execute(
            "SELECT cfgname FROM pg_ts_config WHERE cfgnamespace = 'pg_catalog'::regnamespace"
        ).fetchall()
    assert sorted(BUILT_IN_LANGUAGES) == sorted(name for (name,) in names)


def test_deleted_and_quarantined_documents_leave_every_mode(indexed, ingest, db):
    (indexed / "postgres" / "extensions.md").unlink()
    assert ingest(indexed).success
    assert "postgres/extensions.md" not in ranked(db, "pg_stat_statements", "hybrid", k=10)
    assert ranked(db, "pg_stat_statements", "text") == []

    # The queries filter on their own too: a document marked gone whose chunks are still
    # there (as between two statements of another writer) is found by no mode.
    for column in ("quarantined_at", "deleted_at"):
        with db.connect() as conn:
            conn.execute(
                "UPDATE documents SET quarantined_at = NULL, deleted_at = NULL "
                "WHERE doc_id = 'flags.md'"
            )
            conn.execute(
                sql.SQL("UPDATE documents SET {} = now() WHERE doc_id = 'flags.md'").format(
                    sql.Identifier(column)
                )
            )
            conn.commit()
        for mode in MODES:
            assert "flags.md" not in ranked(db, "ERRCODE_UNDEFINED_TABLE", mode, k=10), mode


def test_migration_gives_existing_chunks_the_default_configuration(pg_url):
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(pg_url) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(sql.SQL("CREATE SCHEMA {0}; SET search_path TO {0}").format(
                sql.Identifier(schema)))  # fmt: skip
            conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY)")
            for version, statements in migrations():
                if version < "005":
                    conn.execute(statements)  # type: ignore[arg-type]
                    conn.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
            conn.execute(
                "INSERT INTO documents (id, source, doc_id, shard, uri) VALUES ('d', 's', 'x', 0, "
                "'u'); INSERT INTO chunks (id, document_id, ordinal, context, text, text_hash, "
                "token_count) VALUES ('c', 'd', 0, 'Flags', 'Use --max-connections', '\\x00', 3)"
            )
        with Database(pg_url, schema).connect() as conn:
            row = conn.execute("SELECT ts_config, tsv::text FROM chunks").fetchone()
        assert row == ("simple", "'connections':5 'flags':1 'max':4 'max-connections':3 'use':2")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_python_api_searches_the_configured_index(indexed, settings):
    assert ingest_assets.search is search_api.search
    hits = ingest_assets.search("pg_stat_statements", 3, settings=settings)
    assert hits[0].doc_id == "postgres/extensions.md" and hits[0].text_rank == 1
    text = ingest_assets.search("pg_stat_statements", mode="text", source="docs", settings=settings)
    assert [h.doc_id for h in text] == ["postgres/extensions.md"]
    with pytest.raises(search_api.SearchError, match="no source named 'nope'"):
        ingest_assets.search("x", source="nope", settings=settings)


def cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = isolated_environment(
        INGEST_HOME=str(settings.home),
        INGEST_DATABASE_URL=settings.database_url.get_secret_value(),
        INGEST_DB_SCHEMA=settings.db_schema,
        INGEST_SHARDS=str(settings.shards),
        # A model without vectors, never downloaded: text mode must not need one.
        INGEST_EMBEDDING_MODEL="no-such-model",
        HF_HUB_OFFLINE="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "ingest_assets.cli", "search", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_text_mode_prints_the_hit_without_a_model(indexed, settings):
    shown = cli(settings, "--mode", "text", "pg_stat_statements")
    assert shown.returncode == 0, shown.stderr
    assert "docs:postgres/extensions.md #0" in shown.stdout
    assert "shared_preload_libraries" in shown.stdout

    as_json = cli(settings, "--mode", "text", "--json", "-k", "3", "--", "--max-connections")
    assert as_json.returncode == 0, as_json.stderr
    assert [h["doc_id"] for h in json.loads(as_json.stdout)] == ["flags.md"]

    # The default mode needs the model's vectors: the serving model's, or the one named.
    hybrid = cli(settings, "--model", "no-such-model", "pg_stat_statements")
    assert hybrid.returncode != 0 and "no vectors for model 'no-such-model'" in hybrid.stderr


def test_source_add_takes_a_language_for_every_kind_and_refuses_an_unknown_one(tmp_path):
    env = isolated_environment(INGEST_HOME=str(tmp_path / "home"))

    def source(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ingest_assets.cli", "source", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    site = source("add", "site", "https://example.com/s.xml", "-o", "language=english")
    folder = source("add", "docs", str(tmp_path), "-o", "language=german")
    assert site.returncode == 0 and folder.returncode == 0, site.stderr + folder.stderr
    listed = {r["name"]: r["options"] for r in json.loads(source("list", "--json").stdout)}
    assert listed == {"site": {"language": "english"}, "docs": {"language": "german"}}

    unknown = source("add", "other", str(tmp_path), "-o", "language=klingon")
    assert unknown.returncode != 0
    assert unknown.stderr.strip().count("\n") == 0
    assert "source 'other': unknown language 'klingon'" in unknown.stderr


@pytest.mark.parametrize(
    ("query", "fused"),
    [
        ("pg_stat_statements", True),
        ("--max-connections", True),
        ("os.path.join", True),
        ("ERRCODE_UNDEFINED_TABLE", True),
        ("getElementById", True),
        ("E0277", True),
        ("git reflog", True),  # two words: full text can pin them
        ("how do I keep the pool from running out of connections", False),
    ],
)
def test_hybrid_needs_every_word_for_identifiers_and_short_queries_only(query, fused):
    assert names_an_identifier(query) is fused
