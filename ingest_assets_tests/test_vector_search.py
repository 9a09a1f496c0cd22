"""Vector search is exact: answered from the nearest vectors when they prove the answer, and
otherwise over every vector, it returns what ordering every live chunk by distance returns."""

from __future__ import annotations

import random

import numpy as np
import pytest
from psycopg import sql

from ingest_assets.database import Database
from ingest_assets.lib.hashed_vectors import hashed_vectors
from ingest_assets.store.search import nearest_first, vector_search
from ingest_assets.store.vectors import vector_table_name

TABLE = vector_table_name("hashing-384")
K = 3  # the nearest 2k + 50 = 56 vectors are fewer than the corpus's 82
DUPLICATE = "Both copies of this note say the same thing about tidal charts and harbour times."

# The definition: every live chunk, ordered by its vector's distance to the query.
REFERENCE = (
    "SELECT 1 - (v.embedding <=> %(q)s), d.source, d.doc_id, c.ordinal "
    "FROM {} v JOIN chunks c ON c.text_hash = v.text_hash "
    "JOIN documents d ON d.id = c.document_id "
    "WHERE d.deleted_at IS NULL AND d.quarantined_at IS NULL "
    "AND (%(source)s::text IS NULL OR d.source = %(source)s) "
    "ORDER BY v.embedding <=> %(q)s, d.doc_id, c.ordinal LIMIT %(k)s"
)


def paragraph(rng: random.Random) -> str:
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(12)
    ]
    return " ".join(words) + "."


@pytest.fixture
def corpus(ingest, tmp_path) -> dict[str, str]:
    """Source `big`: 80 one-chunk notes and two notes with the same text; `small`: 3 notes."""
    rng = random.Random(7)
    texts: dict[str, str] = {}
    for source, count in (("big", 80), ("small", 3)):
        folder = tmp_path / source
        folder.mkdir()
        for i in range(count):
            texts[f"{source}/{i:02d}.md"] = paragraph(rng)
            (folder / f"{i:02d}.md").write_text(texts[f"{source}/{i:02d}.md"] + "\n")
        if source == "big":
            for name in ("dup-a.md", "dup-b.md"):
                (folder / name).write_text(DUPLICATE + "\n")
        assert ingest(folder, name=source).success
    return texts


def query_for(text: str) -> np.ndarray:
    return hashed_vectors([text], 384)[0]


def found(db: Database, query: np.ndarray, source: str | None = None) -> list[tuple]:
    with db.connect() as conn:
        return [
            (h.score, h.source, h.doc_id, h.chunk)
            for h in vector_search(conn, TABLE, query, K, source)
        ]


def reference(db: Database, query: np.ndarray, source: str | None = None) -> list[tuple]:
    with db.connect() as conn:
        rows = conn.execute(
            sql.SQL(REFERENCE).format(sql.Identifier(TABLE)),
            {"q": query.astype(np.float32), "source": source, "k": K},
        ).fetchall()
    return [tuple(row) for row in rows]


def answered_by_nearest(db: Database, query: np.ndarray, source: str | None = None) -> bool:
    with db.connect() as conn:
        return nearest_first(conn, TABLE, query, K, source) is not None


def test_the_nearest_vectors_answer_an_unfiltered_query_exactly(corpus, db):
    queries = [query_for(text) for text in list(corpus.values())[:10]] + [query_for(DUPLICATE)]
    for query in queries:
        assert answered_by_nearest(db, query)
        assert found(db, query) == reference(db, query)
    duplicates = found(db, query_for(DUPLICATE))  # one vector, two chunks
    assert [doc for _, _, doc, _ in duplicates[:2]] == ["dup-a.md", "dup-b.md"]


def test_a_source_filter_the_nearest_vectors_cannot_answer_is_answered_over_every_vector(
    corpus, db
):
    query = query_for(corpus["big/00.md"])  # its nearest vectors are nearly all `big`'s
    assert not answered_by_nearest(db, query, "small")
    expected = reference(db, query, "small")
    assert len(expected) == K
    assert found(db, query, "small") == expected


def test_vectors_without_a_live_chunk_are_passed_over_exactly(corpus, db):
    query = query_for(corpus["big/00.md"])
    nearest_docs = {(source, doc) for _, source, doc, _ in reference(db, query)}
    with db.connect() as conn:  # the 60 nearest documents are gone; their vectors stay
        conn.execute(
            sql.SQL(
                "UPDATE documents SET deleted_at = now() WHERE id IN (SELECT c.document_id "
                "FROM {} v JOIN chunks c ON c.text_hash = v.text_hash "
                "ORDER BY v.embedding <=> %s LIMIT 60)"
            ).format(sql.Identifier(TABLE)),
            (query.astype(np.float32),),
        )
        conn.commit()
    assert not answered_by_nearest(db, query)
    expected = reference(db, query)
    assert len(expected) == K and not nearest_docs & {
        (source, doc) for _, source, doc, _ in expected
    }
    assert found(db, query) == expected
