"""Vector search latency over a large index: the nearest-vectors-first answer beside the scan
that joins every live chunk (the fallback), on the same queries.

Generates a corpus (default 20,000 documents, ~164,000 chunks), ingests it once with the
`hashing` embedder into a home under --work (kept: a second call reuses it), then times
`vector_search` in one process, warm, over --queries random query vectors at k = 10 and 50,
with and without a source filter, first with the tables' statistics cleared (as a bulk load
leaves them until autovacuum's ANALYZE), then after ANALYZE; beside it the fallback over every
vector and the query before the change. Prints median / min / max per case, how many the
nearest vectors answered, and the load average.

    python -m benchmarks.vector_search [--work DIR] [--documents 20000] [--queries 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from benchmarks.corpus import generate_corpus
from benchmarks.search_latency import load
from ingest_assets.database import embedded_server_url
from ingest_assets.store.search import nearest_first, over_every_vector, vector_search
from ingest_assets.store.vectors import vector_table_name
from ingest_assets.testing.environment import isolated_environment

SOURCE = "corpus"
MODEL = "hashing-384"


def indexed_home(work: Path, documents: int) -> tuple[Path, str]:
    """The home holding the corpus's index (made once), and its database URL."""
    home = work / f"home-{documents}"
    url = embedded_server_url(home / "pg")  # held by this process until it exits
    if not (home / "indexed").exists():
        folder = work / f"corpus-{documents}"
        if not folder.exists():
            generate_corpus(folder, documents)
        env = isolated_environment(
            INGEST_HOME=str(home), INGEST_EMBEDDING_PROVIDER="hashing", INGEST_EMBEDDING_MODEL=MODEL
        )
        started = time.perf_counter()
        command = [sys.executable, "-m", "ingest_assets.cli", "run", str(folder), "--name", SOURCE]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=3600)
        (home / "indexed").touch()
        print(f"indexed {documents} documents in {time.perf_counter() - started:.0f}s")
    return home, url


# The query vector_search ran before it read the nearest vectors first (the join carried each
# 1.5 KB vector to the sort), kept here for the side-by-side figure.
BEFORE = (
    "SELECT 1 - (v.embedding <=> %(q)s), d.source, d.doc_id, d.uri, c.ordinal, c.context, c.text "
    "FROM {} v JOIN chunks c ON c.text_hash = v.text_hash JOIN documents d ON d.id = c.document_id "
    "WHERE d.deleted_at IS NULL AND d.quarantined_at IS NULL "
    "AND (%(source)s::text IS NULL OR d.source = %(source)s) "
    "ORDER BY v.embedding <=> %(q)s, d.doc_id, c.ordinal LIMIT %(k)s"
)


def before(
    conn: psycopg.Connection, table: str, query: np.ndarray, k: int, source: str | None
) -> list[tuple]:
    params = {"q": query, "source": source, "k": k}
    return conn.execute(sql.SQL(BEFORE).format(sql.Identifier(table)), params).fetchall()


Search = Callable[[psycopg.Connection, str, np.ndarray, int, "str | None"], object]
CASES: dict[str, Search] = {
    "vector_search": vector_search,
    "over every vector": over_every_vector,
    "the query before": before,
}


def timed(
    search: Search, conn: psycopg.Connection, table: str, queries: list[np.ndarray], k: int,
    source: str | None,
) -> list[float]:  # fmt: skip
    times = []
    for query in queries:
        started = time.perf_counter()
        search(conn, table, query, k, source)
        times.append(time.perf_counter() - started)
    return times


def clear_statistics(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Forget what ANALYZE found (PostgreSQL 18's pg_clear_*_stats)."""
    conn.execute("SELECT pg_clear_relation_stats(%s, %s)", (schema, table))
    columns = conn.execute(
        "SELECT attname FROM pg_stats WHERE schemaname = %s AND tablename = %s", (schema, table)
    ).fetchall()
    for (column,) in columns:
        conn.execute("SELECT pg_clear_attribute_stats(%s, %s, %s, false)", (schema, table, column))


def figure(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"median {statistics.median(ms):.0f} ms (min {min(ms):.0f}, max {max(ms):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-vector-search"))
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args()
    home, url = indexed_home(args.work.resolve(), args.documents)
    table = vector_table_name(MODEL)
    rng = np.random.default_rng(0)
    queries = [rng.standard_normal(384).astype(np.float32) for _ in range(args.queries)]
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute(
            "SELECT schemaname FROM pg_tables WHERE tablename = %s", (table,)
        ).fetchone()
        conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema[0])))
        register_vector(conn)
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[index]
        print(f"{chunks} chunks in {home} [{load()}]")
        tables = ["documents", "chunks", table]
        for analyzed in (False, True):
            for name in tables:
                if analyzed:
                    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
                else:
                    clear_statistics(conn, schema[0], name)
            stats = (
                "after ANALYZE" if analyzed else "none (as a bulk load leaves them until ANALYZE)"
            )
            print(f"table statistics {stats}:")
            for k in (10, 50):
                for source in (None, SOURCE):
                    figures = "; ".join(
                        f"{name} {figure(timed(search, conn, table, queries, k, source))}"
                        for name, search in CASES.items()
                    )
                    answered = sum(
                        nearest_first(conn, table, q, k, source) is not None for q in queries
                    )
                    print(
                        f"  k={k} source={source or '-'}: {figures}; "
                        f"{answered}/{len(queries)} answered by the nearest vectors [{load()}]"
                    )


if __name__ == "__main__":
    main()
