"""The chunking stage: split each document whose chunks are missing or stale into
token-sized, heading-aware chunks, replacing its old ones in one transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from ingest_assets.database import Database
from ingest_assets.lib.chunking import Chunk, Chunker
from ingest_assets.pipeline.progress import StageProgress
from ingest_assets.sources.registry import DEFAULT_LANGUAGE, text_search_config
from ingest_assets.store.chunks import (
    DocumentToChunk,
    count_documents_to_chunk,
    documents_to_chunk,
    quarantine_document,
    replace_chunks,
    text_search_config_exists,
)
from ingest_assets.store.locks import shard_locks
from ingest_assets.store.sources import get_source


@dataclass
class ChunkReport:
    per_shard: Counter[tuple[int, str]] = field(default_factory=Counter)
    samples: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)


def chunk_source(
    reader: psycopg.Connection,
    writer: psycopg.Connection,
    chunker: Chunker,
    source: str,
    shards: list[int],
    stage: StageProgress,
) -> ChunkReport:
    """Re-chunk the shards' documents whose chunks are missing or stale."""
    report = ChunkReport()
    counts = report.per_shard
    signature, ts_config = chunker.signature, _text_search_config(reader, source)
    stage.start(total := count_documents_to_chunk(reader, source, shards, signature, ts_config))
    if not total:
        return report  # nothing changed: no second scan of the documents
    for batch in documents_to_chunk(reader, source, shards, signature, ts_config):
        done: list[tuple[DocumentToChunk, list[Chunk]]] = []
        for doc in batch:
            try:
                pieces = chunker.chunk(doc.body, doc.markup, doc.title)
            except Exception as err:  # a splitter bug must not sink the shard
                quarantine_document(writer, doc.id, f"{doc.doc_id}: chunking failed: {err}")
                counts[(doc.shard, "quarantined")] += 1
                continue
            done.append((doc, pieces))
        replaced = replace_chunks(writer, done, signature, ts_config)
        for doc, pieces in done:
            if doc.id not in replaced:
                continue  # changed again meanwhile: the next run chunks the new content
            counts[(doc.shard, "documents")] += 1
            counts[(doc.shard, "chunks")] += len(pieces)
            counts[(doc.shard, "tokens")] += sum(p.token_count for p in pieces)
            samples = report.samples.setdefault(doc.shard, [])
            if len(samples) < 3 and pieces:
                samples.append((doc.doc_id, pieces[0].context, pieces[0].text[:160]))
        stage.advance(len(batch))
    return report


def _text_search_config(conn: psycopg.Connection, source: str) -> str:
    """The source's `language` option, refused in one line when the database has no such text
    search configuration (a custom one the registry could not check)."""
    record = get_source(conn, source)
    config = text_search_config(record) if record else DEFAULT_LANGUAGE
    if not text_search_config_exists(conn, config):
        raise ValueError(
            f"source {source!r}: unknown language {config!r} (no such text search "
            "configuration in this database's pg_ts_config)"
        )
    return config


def chunk_shards(
    db: Database, chunker: Chunker, source: str, shards: list[int], stage: StageProgress
) -> tuple[ChunkReport, float]:
    """The stage for one source's shards, under their locks: the report and its seconds."""
    with (
        db.connect() as reader,
        db.connect(autocommit=True) as writer,
        db.connect(autocommit=True) as locks,
        shard_locks(locks, "chunks", source, shards),
    ):
        report = chunk_source(reader, writer, chunker, source, shards, stage)
    return report, stage.finish()
