"""Search over the live chunks: by meaning (cosine over a model's vectors), by words (PostgreSQL
full text over the chunks' tsvector), or both fused by reciprocal rank (hybrid).

Dense retrieval misses exact identifiers (function names, settings, error codes, CLI flags);
full text finds them. Both lists see the same chunks: those of live, unquarantined documents.

The text query is websearch_to_tsquery over each source's configuration ('simple' unless the
source sets `language`). Why, from what PostgreSQL's default parser does (the same parser for
'simple' and 'english'; only the dictionaries differ):
- `pg_stat_statements` and `ERRCODE_UNDEFINED_TABLE` split at '_' into their words; websearch
  makes them a phrase ('pg' <-> 'stat' <-> 'statements'), so only the identifier matches, where
  plainto_tsquery ('pg' & 'stat' & 'statements') also matches prose about pg statistics;
- `os.path.join`, `np.float32`, `E0277`, `42P01`, file paths stay one token in both;
- `--max-connections` is 'max-connections' <-> 'max' <-> 'connections', but websearch reads a
  leading '-' as NOT: leading dashes are dropped from the query (`_websearch_text`);
- 'english' stems each part (errcod, undefin, connect) and drops stop words inside identifiers
  (`IF_NOT_EXISTS` becomes just 'exist', matching any prose with "exists"); 'simple' keeps the
  parts as written, hence the default. Its price: stop words count, so a long natural question
  rarely matches every word; hybrid fuses a question in prose with the chunks holding two of
  its words that are not English stop words (`prose_search`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import LiteralString

import numpy as np
import psycopg
from psycopg import sql

from ingest_assets.sources.registry import DEFAULT_LANGUAGE, text_search_config
from ingest_assets.store.sources import list_sources

MODES = ("hybrid", "vector", "text")
DEFAULT_MODE = "hybrid"  # what `ingest search` and the Python API use unless told
RRF_K = 60  # reciprocal rank fusion's constant: a rank r counts 1 / (RRF_K + r)


@dataclass(frozen=True)
class Hit:
    score: float  # vector: cosine similarity; text: ts_rank_cd; hybrid: the fused RRF score
    source: str
    doc_id: str
    uri: str
    chunk: int
    context: str
    text: str
    vector_rank: int | None = None  # 1-based rank in the vector list, when the chunk is in it
    text_rank: int | None = None  # 1-based rank in the full-text list, when the chunk is in it

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.source, self.doc_id, self.chunk)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def candidates(k: int) -> int:
    """How deep hybrid search reads each list to fuse the top k."""
    return max(50, 5 * k)


def search(
    conn: psycopg.Connection,
    table: str | None,
    query: np.ndarray | None,
    k: int,
    source: str | None = None,
    *,
    mode: str = "vector",
    text: str | None = None,
) -> list[Hit]:
    """The top k chunks by `mode`: "vector" needs the model's `table` and the `query` vector,
    "text" the query `text`, "hybrid" both."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r} (modes: {', '.join(MODES)})")
    if mode != "text" and (table is None or query is None):
        raise ValueError(f"{mode} search needs the model's table and the query vector")
    if mode != "vector" and text is None:
        raise ValueError(f"{mode} search needs the query text")
    if mode == "vector":
        return vector_search(conn, table, query, k, source)  # type: ignore[arg-type]
    if mode == "text":
        return text_search(conn, text, k, source)  # type: ignore[arg-type]
    depth = candidates(k)
    words = text_search if names_an_identifier(text) else prose_search  # type: ignore[arg-type]
    return fuse(
        vector_search(conn, table, query, depth, source),  # type: ignore[arg-type]
        words(conn, text, depth, source),  # type: ignore[arg-type]
        k,
    )


# An identifier's marks: _ . / : ( ) inside or around words, a dash inside a word or leading
# one (a flag), camelCase, digits.
_IDENTIFIER = re.compile(r"[_./:()]|\w-\w|(?<!\S)-|[a-z][A-Z]|\d")


def names_an_identifier(text: str) -> bool:
    """Whether hybrid search fuses the full-text list that needs every word (`text_search`):
    for a query that names an identifier, or of one or two words. A question in prose is
    fused with `prose_search` instead. On the 60 paraphrases of
    evals/python_reference.jsonl, MRR@10 went from 0.675 by vectors alone to 0.717, and the
    12 of evals/samples.jsonl stayed at 1.000 (retrieval-20261202T031723)."""
    return bool(_IDENTIFIER.search(text)) or len(text.split()) <= 2


# Each distance is computed once, in the scan of the vector table: the joins then carry a hash
# and a distance, not 1.5 KB vectors (OFFSET 0 keeps the subquery from being merged into them).
_EVERY_VECTOR = "(SELECT text_hash, embedding <=> %(q)s AS distance FROM {} OFFSET 0) v "
# What every mode keeps: chunks of live, unquarantined documents of the source asked for, if any.
_IN_SCOPE = (
    "d.deleted_at IS NULL AND d.quarantined_at IS NULL "
    "AND (%(source)s::text IS NULL OR d.source = %(source)s) "
)
_BY_DISTANCE = "ORDER BY v.distance, d.doc_id, c.ordinal LIMIT %(k)s"
_LIVE_HITS = (
    "JOIN chunks c ON c.text_hash = v.text_hash JOIN documents d ON d.id = c.document_id "
    "WHERE " + _IN_SCOPE + _BY_DISTANCE
)
_HIT_COLUMNS = "SELECT 1 - v.distance, d.source, d.doc_id, d.uri, c.ordinal, c.context, c.text"
_NEAREST_VECTORS = (
    "WITH v AS MATERIALIZED (SELECT text_hash, embedding <=> %(q)s AS distance FROM {} "
    "ORDER BY 2 LIMIT %(n)s), edge AS (SELECT max(distance) AS distance, count(*) AS n FROM v) "
)
# The live chunks of each of the nearest vectors: its chunks by hash, then their documents by
# id. Each LATERAL ... OFFSET 0 is looked up once per row before it, in that order, whatever
# the statistics say: those a bulk load leaves made the planner start from the documents
# (0.9 s instead of 0.07 s at 164,000 chunks).
_NEAREST_HITS = (
    _HIT_COLUMNS + ", v.distance, edge.distance, edge.n FROM edge CROSS JOIN v "
    "CROSS JOIN LATERAL (SELECT document_id, ordinal, context, text FROM chunks "
    "WHERE text_hash = v.text_hash OFFSET 0) c "
    "CROSS JOIN LATERAL (SELECT d.source, d.doc_id, d.uri FROM documents d "
    "WHERE d.id = c.document_id AND " + _IN_SCOPE + "OFFSET 0) d " + _BY_DISTANCE
)


def vector_search(
    conn: psycopg.Connection, table: str, query: np.ndarray, k: int, source: str | None = None
) -> list[Hit]:
    """The k live chunks nearest to `query` by cosine distance, exactly (there is no
    approximate index). Most queries are answered from the nearest vectors alone; the rest
    (a source filter, vectors whose texts no longer have a live chunk) by every vector."""
    found = nearest_first(conn, table, query, k, source)
    if found is None:
        found = over_every_vector(conn, table, query, k, source)
    return [
        Hit(float(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], vector_rank=rank)
        for rank, r in enumerate(found, start=1)
    ]


def over_every_vector(
    conn: psycopg.Connection, table: str, query: np.ndarray, k: int, source: str | None = None
) -> list[tuple]:
    """`vector_search`'s rows from every vector joined to the live chunks."""
    params = {"q": query.astype(np.float32), "source": source, "k": k}
    query_text = sql.SQL(_HIT_COLUMNS + " FROM " + _EVERY_VECTOR + _LIVE_HITS)
    return conn.execute(query_text.format(sql.Identifier(table)), params).fetchall()


def nearest_first(
    conn: psycopg.Connection, table: str, query: np.ndarray, k: int, source: str | None = None
) -> list[tuple] | None:
    """`vector_search`'s rows from the live chunks of the nearest 2k + 50 vectors, or None when
    those do not prove the answer: a chunk of a farther vector could still belong in it unless
    the k-th row is strictly nearer than the farthest of them (or they are every vector).
    One scan of the vector table and a few index lookups: 66 ms against 530 ms for the join
    of every chunk at 164,000 chunks."""
    nearest = 2 * k + 50
    params = {"q": query.astype(np.float32), "source": source, "k": k, "n": nearest}
    query_text = sql.SQL(_NEAREST_VECTORS + _NEAREST_HITS)
    rows = conn.execute(query_text.format(sql.Identifier(table)), params).fetchall()
    if not rows:
        return None
    last, farthest, vectors = rows[-1][7], rows[-1][8], rows[-1][9]
    if vectors < nearest or (len(rows) == k and last < farthest):
        return rows
    return None


def text_search(
    conn: psycopg.Connection, text: str, k: int, source: str | None = None
) -> list[Hit]:
    """Full-text search, ranked by cover density (ts_rank_cd). The query is parsed once per
    text search configuration the sources use, and each parse matches only the chunks written
    with that configuration (a stemmed query against unstemmed chunks would miss)."""
    query = "websearch_to_tsquery(cfg::regconfig, %(text)s)"
    params = {"text": _websearch_text(text)}
    return _ranked_by_words(conn, "ts_rank_cd", query, query, k, source, params)


def prose_search(
    conn: psycopg.Connection, text: str, k: int, source: str | None = None
) -> list[Hit]:
    """Full-text search for a question in prose: chunks with at least two of its words that
    are not English stop words (one, when it has only one or two), ranked by ts_rank. A word
    matches by its start shared with its English stem (`growth` for "grow", `assignment` for
    "assign"), as the `simple` configuration keeps words unstemmed. Needing every word, as
    `text_search` does, picks chunks by the question's filler words; needing any one fuses in
    chunks that share one common word; needing half left out the right chunk when the
    question's words are spread over its document (see README, retrieval quality)."""
    words = prose_words(conn, text)
    if not words:
        return []
    pairs = itertools.combinations(words, 2 if len(words) > 2 else 1)
    params = {
        "any": " | ".join(words),
        "pairs": " | ".join(f"({' & '.join(pair)})" for pair in pairs),
    }
    rank_by = "to_tsquery(cfg::regconfig, %(any)s)"
    match = "to_tsquery(cfg::regconfig, %(pairs)s)"
    return _ranked_by_words(conn, "ts_rank", rank_by, match, k, source, params)


def _ranked_by_words(
    conn: psycopg.Connection,
    rank: LiteralString,
    rank_by: LiteralString,
    match: LiteralString,
    k: int,
    source: str | None,
    params: dict[str, str],
) -> list[Hit]:
    """The top k live chunks in scope that `match`, by `rank`(tsv, `rank_by`); both are
    tsquery expressions of each text search configuration `cfg`, computed once per
    configuration (MATERIALIZED), not again for each chunk."""
    rows = conn.execute(
        "WITH q AS MATERIALIZED (SELECT cfg, " + rank_by + " AS rank_by, " + match + " AS match "
        "FROM unnest(%(configs)s::text[]) AS cfg) "
        "SELECT " + rank + "(c.tsv, q.rank_by) AS score, d.source, d.doc_id, d.uri, "
        "c.ordinal, c.context, c.text "
        "FROM q JOIN chunks c ON c.ts_config = q.cfg AND c.tsv @@ q.match "
        "JOIN documents d ON d.id = c.document_id WHERE "
        + _IN_SCOPE
        + "ORDER BY score DESC, d.source, d.doc_id, c.ordinal LIMIT %(k)s",
        {**params, "configs": _configs(conn, source), "source": source, "k": k},
    )
    return [
        Hit(float(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], text_rank=position)
        for position, r in enumerate(rows, start=1)
    ]


def prose_words(conn: psycopg.Connection, text: str) -> list[str]:
    """The text's words that are not English stop words, as tsquery prefixes: each word's
    common start with its English stem ("gravit" for gravity, stemmed "graviti"; "sav" for
    savings, stemmed "save"), or the word itself when that start is under three letters."""
    rows = conn.execute(
        "SELECT DISTINCT word, stem[1] "
        "FROM unnest(tsvector_to_array(to_tsvector('simple', %s))) AS word, "
        "ts_lexize('english_stem', word) AS stem WHERE stem <> '{}' ORDER BY 1",
        (text,),
    )
    prefixes = set()
    for word, stem in rows:
        start = _shared_start(word, stem)
        prefixes.add(_tsquery_word(start) + ":*" if len(start) >= 3 else _tsquery_word(word))
    return sorted(prefixes)


def _shared_start(word: str, stem: str) -> str:
    length = 0
    while length < min(len(word), len(stem)) and word[length] == stem[length]:
        length += 1
    return word[:length]


def _tsquery_word(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def fuse(vector: Sequence[Hit], text: Sequence[Hit], k: int, rrf_k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion of two ranked lists: a chunk scores the sum of 1 / (rrf_k + rank)
    over the lists it is in, so agreement wins and neither list's score scale matters. Ties go
    to the better single rank, then to the full-text list (its hits hold every query word),
    then to (source, doc_id, chunk): the same order every time."""
    ranks: dict[tuple[str, str, int], list[int | None]] = {}
    hits: dict[tuple[str, str, int], Hit] = {}
    for position, ranked in enumerate((vector, text)):
        for rank, hit in enumerate(ranked, start=1):
            hits.setdefault(hit.key, hit)
            ranks.setdefault(hit.key, [None, None])[position] = rank

    def score(key: tuple[str, str, int]) -> float:
        return sum(1 / (rrf_k + r) for r in ranks[key] if r is not None)

    def order(key: tuple[str, str, int]) -> tuple[float, int, bool, tuple[str, str, int]]:
        best = min(r for r in ranks[key] if r is not None)
        return (-score(key), best, ranks[key][1] is None, key)

    return [
        replace(hits[key], score=score(key), vector_rank=ranks[key][0], text_rank=ranks[key][1])
        for key in sorted(hits, key=order)[:k]
    ]


def _configs(conn: psycopg.Connection, source: str | None) -> list[str]:
    """The text search configurations the chunks in scope were written with."""
    return sorted(
        {DEFAULT_LANGUAGE}
        | {text_search_config(r) for r in list_sources(conn) if source in (None, r.name)}
    )


_LEADING_DASHES = re.compile(r"(?<!\S)-+(?=\w)")


def _websearch_text(text: str) -> str:
    """websearch_to_tsquery reads `-word` as NOT word; in a search of documentation a leading
    dash is a command-line flag (`--max-connections`), so it is dropped."""
    return _LEADING_DASHES.sub("", text)
