"""Retrieval quality on one's own data: a file of queries, each with the documents it should
find, scored as recall@k and MRR@10 per search mode. `ingest eval`, the `retrieval_quality`
asset check and the benchmarks call `evaluate` (or `score` with a search of their own)."""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import psycopg

from ingest_assets.embedders import EmbeddingSettings, open_embedder
from ingest_assets.store import search as store

CUTOFFS = (1, 5, 10)
DEPTH = 10  # hits fetched per query: the deepest cutoff and MRR@10


class EvalFileError(ValueError):
    """A queries file that cannot be used, said in one line (the file, the line, why)."""


class Found(Protocol):
    """What a search hit must tell: which document it is."""

    @property
    def doc_id(self) -> str: ...

    @property
    def uri(self) -> str: ...


@dataclass(frozen=True)
class EvalQuery:
    query: str
    expect: tuple[str, ...]  # document ids or URI globs; any of them is a right answer
    kind: str = ""  # optional label, e.g. "identifier" or "paraphrase"


@dataclass
class ModeScore:
    mode: str
    queries: int = 0
    recall: dict[int, float] = field(default_factory=dict)  # cutoff -> share of queries
    mrr: float = 0.0  # mean reciprocal rank of the first right document, within DEPTH
    ranks: list[int | None] = field(default_factory=list)  # per query; None: not in DEPTH

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "queries": self.queries,
            **{f"recall_at_{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr_at_10": round(self.mrr, 4),
            "ranks": self.ranks,
        }


def load_queries(path: Path) -> list[EvalQuery]:
    """JSON lines of {"query": ..., "expect": [doc id or URI glob, ...], "kind"?: ...}."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise EvalFileError(f"{path}: {err.strerror}") from None
    queries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(line)
            query, expect = entry["query"], entry["expect"]
        except (ValueError, KeyError, TypeError):
            raise EvalFileError(
                f'{path}:{number}: expected {{"query": "...", "expect": ["doc id or URI '
                'glob", ...]}'
            ) from None
        if isinstance(expect, str):
            expect = [expect]
        if not isinstance(query, str) or not query.strip() or not expect:
            raise EvalFileError(f"{path}:{number}: a query needs text and at least one expect")
        queries.append(EvalQuery(query, tuple(str(e) for e in expect), str(entry.get("kind", ""))))
    if not queries:
        raise EvalFileError(f"{path}: no queries")
    return queries


def is_expected(hit: Found, expect: Sequence[str]) -> bool:
    return any(
        hit.doc_id == pattern
        or fnmatch.fnmatchcase(hit.doc_id, pattern)
        or fnmatch.fnmatchcase(hit.uri, pattern)
        for pattern in expect
    )


def first_right_rank(hits: Sequence[Found], expect: Sequence[str]) -> int | None:
    """1-based rank of the first hit from an expected document (hits are chunks: a document
    may appear several times), or None."""
    for rank, hit in enumerate(hits, start=1):
        if is_expected(hit, expect):
            return rank
    return None


def score(
    mode: str, queries: Sequence[EvalQuery], search: Callable[[str, int], Sequence[Found]]
) -> ModeScore:
    """Run every query through `search(query, k)` and score the first right document's rank.
    Ranks count documents, not chunks: a document's second chunk does not push the next
    document down."""
    result = ModeScore(mode, queries=len(queries))
    for query in queries:
        result.ranks.append(
            first_right_rank(_distinct_documents(search(query.query, DEPTH * 4)), query.expect)
        )
    found = result.ranks
    result.recall = {
        k: sum(1 for r in found if r is not None and r <= k) / len(found) for k in CUTOFFS
    }
    result.mrr = sum(1 / r for r in found if r is not None and r <= DEPTH) / len(found)
    return result


def _distinct_documents(hits: Sequence[Found]) -> list[Found]:
    seen: set[str] = set()
    kept = []
    for hit in hits:
        if hit.doc_id not in seen:
            seen.add(hit.doc_id)
            kept.append(hit)
        if len(kept) == DEPTH:
            break
    return kept


def failed_thresholds(scores: ModeScore, thresholds: dict[str, float]) -> list[str]:
    """The thresholds (e.g. {"min_recall_at_5": 0.9, "min_mrr_at_10": 0.7}) a score misses,
    each said as "recall@5 0.85 < 0.90"."""
    missed = []
    for name, minimum in sorted(thresholds.items()):
        if name == "min_mrr_at_10":
            value, label = scores.mrr, "MRR@10"
        elif name.startswith("min_recall_at_") and int(name.rsplit("_", 1)[1]) in CUTOFFS:
            cutoff = int(name.rsplit("_", 1)[1])
            value, label = scores.recall[cutoff], f"recall@{cutoff}"
        else:
            raise EvalFileError(
                f"unknown threshold {name!r} (use min_recall_at_1, min_recall_at_5, "
                "min_recall_at_10 or min_mrr_at_10)"
            )
        if value < minimum:
            missed.append(f"{label} {value:.2f} < {minimum:.2f}")
    return missed


def evaluate(
    conn: psycopg.Connection,
    queries: Sequence[EvalQuery],
    modes: Sequence[str],
    *,
    table: str | None,
    embedding: EmbeddingSettings | None,
    source: str | None = None,
) -> list[ModeScore]:
    """Score each mode on the index as it is: one connection, the queries embedded once (in
    batches, by one embedder) unless every mode is text."""
    vectors: dict[str, np.ndarray] = {}
    if any(mode != "text" for mode in modes):
        if table is None or embedding is None:
            raise ValueError("vector and hybrid modes need the model's table and settings")
        texts = sorted({q.query for q in queries})
        vectors = dict(zip(texts, embed_queries(embedding, texts), strict=True))

    def searcher(mode: str) -> Callable[[str, int], Sequence[Found]]:
        def search(query: str, k: int) -> Sequence[Found]:
            vector = vectors.get(query)
            return store.search(conn, table, vector, k, source, mode=mode, text=query)

        return search

    return [score(mode, queries, searcher(mode)) for mode in modes]


def embed_queries(embedding: EmbeddingSettings, texts: Sequence[str]) -> list[np.ndarray]:
    async def embed() -> list[np.ndarray]:
        async with open_embedder(embedding) as embedder:
            rows: list[np.ndarray] = []
            for start in range(0, len(texts), embedding.batch_size):
                rows += list(await embedder.embed(texts[start : start + embedding.batch_size]))
            return rows

    return asyncio.run(embed())
