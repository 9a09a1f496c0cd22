"""The three assets materialised through the real ingest job against the real PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.corpus import make_text_pdf
from ingest_assets.database import Database
from ingest_assets.defs.partitions import SOURCES_PARTITIONS_NAME, build_partitions, source_range
from ingest_assets.lib.chunking import Chunker
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.store.chunks import documents_to_chunk
from ingest_assets.store.search import search
from ingest_assets.store.vectors import vector_table_name

TIDES = "# Tides\n\nThe moon's gravity pulls the oceans, raising two bulges of water.\n"
BREAD = "Sourdough starter is flour and water fermented by wild yeast and bacteria.\n"
CHESS = (
    "<html><head><title>Castling</title><script>var x = 1;</script></head><body>"
    "<nav>menu</nav><main><h1>Castling</h1><p>The king moves two squares toward a rook."
    "</p><h2>Conditions</h2><p>Neither piece may have moved before.</p></main></body></html>"
)


def write_corpus(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "tides.md").write_text(TIDES)
    (root / "sub" / "bread.txt").write_text(BREAD)
    (root / "chess.html").write_text(CHESS)
    (root / "plants.pdf").write_bytes(
        make_text_pdf(["Photosynthesis turns light, water and carbon dioxide into sugar."])
    )
    (root / "ignored.docx").write_bytes(b"not a supported type")
    return root


def counts(db: Database) -> dict[str, int]:
    table = vector_table_name("hashing-384")
    with db.connect() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM documents WHERE deleted_at IS NULL),"
            " (SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL),"
            " (SELECT count(*) FROM chunks),"
            " (SELECT count(DISTINCT text_hash) FROM chunks),"
            f" (SELECT count(*) FROM {table}),"
            " (SELECT count(*) FROM documents WHERE quarantined_at IS NOT NULL)"
        ).fetchone()
    keys = ("live", "deleted", "chunks", "distinct_texts", "vectors", "quarantined")
    return dict(zip(keys, row, strict=True))


def top_doc(db: Database, query: str, k: int = 1) -> list[str]:
    with db.connect() as conn:
        hits = search(conn, vector_table_name("hashing-384"), hashed_vectors([query], 384)[0], k)
    return [h.doc_id for h in hits]


def test_first_run_stores_documents_chunks_and_one_vector_per_distinct_text(ingest, db, tmp_path):
    summary = ingest(write_corpus(tmp_path / "corpus"))

    assert summary.success, summary.error
    assert summary.totals["documents_new"] == 4
    c = counts(db)
    assert c["live"] == 4 and c["quarantined"] == 0
    assert c["chunks"] >= 4
    assert c["vectors"] == c["distinct_texts"] == summary.totals["texts_embedded"]
    assert top_doc(db, "moon gravity oceans bulges") == ["tides.md"]
    assert top_doc(db, "king rook squares castling") == ["chess.html"]
    assert top_doc(db, "light carbon dioxide sugar") == ["plants.pdf"]


def test_html_keeps_headings_as_chunk_context(ingest, db, tmp_path):
    ingest(write_corpus(tmp_path / "corpus"))
    with db.connect() as conn:
        contexts = [
            row[0]
            for row in conn.execute(
                "SELECT c.context FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.doc_id = 'chess.html' ORDER BY c.ordinal"
            )
        ]
        body = conn.execute("SELECT body FROM documents WHERE doc_id = 'chess.html'").fetchone()
    assert contexts and all(c.startswith("Castling") for c in contexts)
    assert "menu" not in body[0] and "var x" not in body[0]


def test_rerun_without_changes_embeds_nothing(ingest, db, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(corpus)
    before = counts(db)

    again = ingest(corpus)

    assert again.success
    assert again.totals["documents_unchanged"] == 4
    assert again.totals["documents_new"] == again.totals["documents_changed"] == 0
    assert again.totals["chunks_written"] == 0
    assert again.totals["texts_embedded"] == 0
    assert again.totals["texts_reused"] >= before["distinct_texts"]
    assert counts(db) == before


def test_change_delete_and_add_reprocess_exactly_those(ingest, db, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(corpus)
    (corpus / "tides.md").write_text(TIDES + "\nSpring tides happen at new and full moon.\n")
    (corpus / "sub" / "bread.txt").unlink()
    (corpus / "volcano.txt").write_text("Magma rises through the crust and erupts as lava.\n")

    summary = ingest(corpus)

    assert summary.totals["documents_changed"] == 1
    assert summary.totals["documents_deleted"] == 1
    assert summary.totals["documents_new"] == 1
    assert summary.totals["documents_unchanged"] == 2
    assert "sub/bread.txt" not in top_doc(db, "sourdough starter wild yeast flour", k=10)
    assert top_doc(db, "magma crust lava") == ["volcano.txt"]
    assert top_doc(db, "spring tides full moon") == ["tides.md"]
    c = counts(db)
    assert c["live"] == 4 and c["deleted"] == 1
    with db.connect() as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.deleted_at IS NOT NULL"
        ).fetchone()
    assert orphans[0] == 0


def test_touched_file_with_same_content_is_not_reprocessed(ingest, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(corpus)
    (corpus / "tides.md").write_text(TIDES)  # new mtime, same bytes

    summary = ingest(corpus)

    assert summary.totals["documents_unchanged"] == 4
    assert summary.totals["chunks_written"] == 0


def test_identical_text_in_two_documents_is_embedded_once(ingest, db, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    # Same heading title, so the same embedding input (a .txt takes its title from its name).
    shutil.copy(corpus / "tides.md", corpus / "sub" / "tides-copy.md")

    summary = ingest(corpus)

    c = counts(db)
    assert c["chunks"] > c["distinct_texts"] == c["vectors"]
    assert summary.totals["texts_embedded"] == c["vectors"]


def test_broken_document_is_quarantined_and_the_rest_ingested(ingest, db, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage that is not a pdf")
    (corpus / "binary.md").write_bytes(b"\x00\x01\x02\x03" * 100)

    summary = ingest(corpus)

    assert summary.success
    reasons = dict(summary.quarantined)
    assert set(reasons) == {"broken.pdf", "binary.md"}
    assert "corrupt PDF" in reasons["broken.pdf"] and "broken.pdf" in reasons["broken.pdf"]
    assert "binary data" in reasons["binary.md"]
    c = counts(db)
    assert c["live"] == 6 and c["quarantined"] == 2
    assert c["vectors"] == c["distinct_texts"]

    (corpus / "broken.pdf").write_bytes(make_text_pdf(["Fixed now: glaciers carve valleys."]))
    fixed = ingest(corpus)
    assert dict(fixed.quarantined).keys() == {"binary.md"}
    assert top_doc(db, "glaciers carve valleys") == ["broken.pdf"]


def test_chunker_change_rechunks_every_document(ingest, settings, db, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(corpus)
    wider = settings.model_copy(update={"chunk_tokens": 128})

    summary = ingest(corpus, settings=wider)

    assert summary.totals["documents_unchanged"] == 4
    with db.connect() as conn:
        chunkers = {r[0] for r in conn.execute("SELECT chunker FROM documents")}
    assert chunkers == {Chunker(128).signature}
    assert summary.totals["chunks_written"] > 0


def test_a_document_has_chunks_to_replace_only_once_it_was_chunked(ingest, settings, db, tmp_path):
    # A first chunking skips the DELETE of old chunks; the unique (document, ordinal) key
    # would refuse a re-chunked document whose old chunks were left in place.
    corpus = write_corpus(tmp_path / "corpus")
    ingest(corpus)
    with db.connect() as conn:
        conn.execute("UPDATE documents SET chunked_hash = NULL WHERE doc_id = 'tides.md'")
        conn.execute(
            "DELETE FROM chunks WHERE document_id IN "
            "(SELECT id FROM documents WHERE doc_id = 'tides.md')"
        )
        conn.commit()
        shards = list(range(settings.shards))
        pending = [
            doc
            for batch in documents_to_chunk(conn, "docs", shards, "another-chunker", "simple")
            for doc in batch
        ]
    chunked = {doc.doc_id: doc.chunked for doc in pending}
    assert chunked == {
        "tides.md": False,
        "sub/bread.txt": True,
        "chess.html": True,
        "plants.pdf": True,
    }

    summary = ingest(corpus, settings=settings.model_copy(update={"chunk_tokens": 128}))

    assert summary.totals["documents_unchanged"] == 4
    assert top_doc(db, "moon gravity oceans bulges") == ["tides.md"]
    with db.connect() as conn:
        per_document = conn.execute(
            "SELECT count(*), count(DISTINCT (document_id, ordinal)) FROM chunks"
        ).fetchone()
    assert per_document[0] == per_document[1] > 0


def test_runs_are_recorded_per_partition_in_the_instance(ingest, instance, tmp_path, settings):
    ingest(write_corpus(tmp_path / "corpus"))

    partitions = build_partitions(settings.shards)
    keys = partitions.get_partition_keys(dynamic_partitions_store=instance)
    first, last = source_range("docs", settings.shards)
    assert keys[0] == first and keys[settings.shards - 1] == last
    assert instance.get_dynamic_partitions(SOURCES_PARTITIONS_NAME) == ["docs"]
    import dagster as dg

    for asset in ("raw_documents", "chunks", "embeddings"):
        materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert materialized == set(keys)


def test_two_sources_stay_apart(ingest, db, tmp_path):
    ingest(write_corpus(tmp_path / "a"), name="alpha")
    other = tmp_path / "b"
    other.mkdir()
    (other / "tides.md").write_text("# Volcanoes\n\nLava and ash.\n")

    ingest(other, name="beta")

    with db.connect() as conn:
        hits = search(
            conn, vector_table_name("hashing-384"), hashed_vectors(["lava ash"], 384)[0], 10, "beta"
        )
    assert {h.source for h in hits} == {"beta"}


@pytest.mark.parametrize("shards", [1, 7])
def test_any_shard_count_covers_every_document(ingest, settings, db, tmp_path, shards):
    summary = ingest(
        write_corpus(tmp_path / "c"), settings=settings.model_copy(update={"shards": shards})
    )
    assert summary.totals["documents_new"] == 4
    assert counts(db)["live"] == 4
