"""Stage 2 as Dagster sees it: the `chunks` asset over pipeline.chunk."""

import dagster as dg

from ingest_assets.defs.partitions import partition_key, shards_by_source
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.lib.chunking import Chunker
from ingest_assets.pipeline.chunk import chunk_shards
from ingest_assets.pipeline.progress import ProgressListener, StageProgress


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
        for source_name, shards in shards_by_source(context.partition_keys).items():
            stage = StageProgress(progress, context.log, "chunking")
            report, seconds = chunk_shards(db, chunker, source_name, shards, stage)
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
