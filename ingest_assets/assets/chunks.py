"""Stage 2: split changed documents into token-sized, heading-aware chunks."""

from collections import Counter
from dataclasses import dataclass, field

import dagster as dg
import psycopg

from ingest_assets.lib.chunking import Chunk, Chunker
from ingest_assets.partitions import partition_key, shards_by_source
from ingest_assets.progress import ProgressListener, StageProgress
from ingest_assets.resources.postgres import PostgresResource
from ingest_assets.store.chunks import (
    DocumentToChunk,
    count_documents_to_chunk,
    documents_to_chunk,
    quarantine_document,
    replace_chunks,
)
from ingest_assets.store.locks import shard_locks


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
    stage.start(total := count_documents_to_chunk(reader, source, shards, chunker.signature))
    if not total:
        return report  # nothing changed: no second scan of the documents
    for batch in documents_to_chunk(reader, source, shards, chunker.signature):
        done: list[tuple[DocumentToChunk, list[Chunk]]] = []
        for doc in batch:
            try:
                pieces = chunker.chunk(doc.body, doc.markup, doc.title)
            except Exception as err:  # a splitter bug must not sink the shard
                quarantine_document(writer, doc.id, f"{doc.doc_id}: chunking failed: {err}")
                counts[(doc.shard, "quarantined")] += 1
                continue
            done.append((doc, pieces))
        replaced = replace_chunks(writer, done, chunker.signature)
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


def build_chunks(
    partitions: dg.MultiPartitionsDefinition,
    chunker: Chunker,
    retry_policy: dg.RetryPolicy,
    backfill_policy: dg.BackfillPolicy,
) -> dg.AssetsDefinition:
    @dg.asset(
        name="chunks",
        deps=["raw_documents"],
        partitions_def=partitions,
        group_name="ingestion",
        code_version=chunker.signature,
        retry_policy=retry_policy,
        backfill_policy=backfill_policy,
        kinds={"postgres"},
    )
    def chunks(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        progress: dg.ResourceParam[ProgressListener],
    ) -> dg.MaterializeResult:
        """Token-aware chunks of each changed document, with its heading path as context."""
        db = postgres.database()
        with (
            db.connect() as reader,
            db.connect(autocommit=True) as writer,
            db.connect(autocommit=True) as locks,
        ):
            for source_name, shards in shards_by_source(context.partition_keys).items():
                stage = StageProgress(progress, context.log, "chunking")
                with shard_locks(locks, "chunks", source_name, shards):
                    report = chunk_source(reader, writer, chunker, source_name, shards, stage)
                seconds = stage.finish()
                for shard in shards:
                    context.add_asset_metadata(
                        {
                            "documents_chunked": report.per_shard[(shard, "documents")],
                            "chunks_written": report.per_shard[(shard, "chunks")],
                            "tokens": report.per_shard[(shard, "tokens")],
                            "quarantined_while_chunking": report.per_shard[(shard, "quarantined")],
                            "seconds": round(seconds, 3),
                            "chunker": chunker.signature,
                            "sample_chunks": dg.MetadataValue.md(
                                _sample_table(report.samples.get(shard, []))
                            ),
                        },
                        partition_key=partition_key(source_name, shard),
                    )
        return dg.MaterializeResult()

    return chunks


def _sample_table(samples: list[tuple[str, str, str]]) -> str:
    if not samples:
        return "no chunks written"
    rows = ["| document | context | text |", "| --- | --- | --- |"]
    for doc, context, text in samples:
        cells = [value.replace("|", "\\|").replace("\n", " ") for value in (doc, context, text)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
