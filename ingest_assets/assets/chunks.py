"""Stage 2: split changed documents into token-sized, heading-aware chunks."""

from collections import Counter

import dagster as dg

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
        samples: dict[int, list[tuple[str, str, str]]] = {}
        with db.connect() as reader, db.connect(autocommit=True) as writer:
            for source_name, shards in shards_by_source(context.partition_keys).items():
                stage = StageProgress(progress, context.log, "chunking")
                stage.start(
                    count_documents_to_chunk(reader, source_name, shards, chunker.signature)
                )
                per_shard: Counter[tuple[int, str]] = Counter()
                for batch in documents_to_chunk(reader, source_name, shards, chunker.signature):
                    done: list[tuple[DocumentToChunk, list[Chunk]]] = []
                    for doc in batch:
                        try:
                            pieces = chunker.chunk(doc.body, doc.markup, doc.title)
                        except Exception as err:  # a splitter bug must not sink the shard
                            reason = f"{doc.doc_id}: chunking failed: {err}"
                            quarantine_document(writer, doc.id, reason)
                            per_shard[(doc.shard, "quarantined")] += 1
                            continue
                        done.append((doc, pieces))
                    replaced = replace_chunks(writer, done, chunker.signature)
                    for doc, pieces in done:
                        if doc.id in replaced:
                            per_shard[(doc.shard, "documents")] += 1
                            per_shard[(doc.shard, "chunks")] += len(pieces)
                            per_shard[(doc.shard, "tokens")] += sum(p.token_count for p in pieces)
                            shard_samples = samples.setdefault(doc.shard, [])
                            if len(shard_samples) < 3 and pieces:
                                first = pieces[0]
                                shard_samples.append((doc.doc_id, first.context, first.text[:160]))
                    stage.advance(len(batch))
                seconds = stage.finish()
                for shard in shards:
                    context.add_asset_metadata(
                        {
                            "documents_chunked": per_shard[(shard, "documents")],
                            "chunks_written": per_shard[(shard, "chunks")],
                            "tokens": per_shard[(shard, "tokens")],
                            "quarantined_while_chunking": per_shard[(shard, "quarantined")],
                            "seconds": round(seconds, 3),
                            "chunker": chunker.signature,
                            "sample_chunks": dg.MetadataValue.md(
                                _sample_table(samples.get(shard, []))
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
