"""Stage 3: embed every chunk text that has no vector yet for the active model."""

import asyncio
import time
from collections import Counter

import dagster as dg
import numpy as np
import psycopg

from ingest_assets.lib.batching import batch_indices
from ingest_assets.lib.chunking import embedding_input
from ingest_assets.partitions import partition_key, shards_by_source
from ingest_assets.progress import ProgressListener, StageProgress
from ingest_assets.resources.embeddings import EmbeddingResource
from ingest_assets.resources.postgres import PostgresResource
from ingest_assets.resources.providers import Embedder
from ingest_assets.store.vectors import (
    PendingText,
    count_pending_texts,
    coverage_by_shard,
    ensure_model_table,
    pending_texts,
    write_vectors,
)


async def embed_block(
    embedder: Embedder, block: list[PendingText], max_items: int, max_tokens: int
) -> np.ndarray:
    """Embed one block of texts in length-sorted batches; rows come back in block order."""
    order = sorted(range(len(block)), key=lambda i: block[i].token_count)
    batches = batch_indices([block[i].token_count for i in order], max_items, max_tokens)
    vectors = np.empty((len(block), embedder.dimension), dtype=np.float32)
    for batch in batches:
        positions = [order[i] for i in batch]
        texts = [embedding_input(block[p].context, block[p].text) for p in positions]
        vectors[positions] = await embedder.embed(texts)
    return vectors


async def embed_source(
    reader: psycopg.Connection,
    writer: psycopg.Connection,
    embedder: Embedder,
    table: str,
    source: str,
    shards: list[int],
    settings: EmbeddingResource,
    stage: StageProgress,
) -> Counter[tuple[int, str]]:
    """Embed and store the source's missing texts; the write of one block overlaps the
    embedding of the next."""
    counts: Counter[tuple[int, str]] = Counter()
    stage.start(count_pending_texts(reader, table, source, shards))
    write: asyncio.Future[int] | None = None
    for block in pending_texts(reader, table, source, shards):
        vectors = await embed_block(embedder, block, settings.batch_size, settings.max_batch_tokens)
        if write is not None:
            await write
        hashes = [p.text_hash for p in block]
        write = asyncio.ensure_future(
            asyncio.to_thread(write_vectors, writer, table, hashes, vectors)
        )
        for pending in block:
            counts[(pending.shard, "embedded")] += 1
            counts[(pending.shard, "tokens")] += pending.token_count
        stage.advance(len(block))
    if write is not None:
        await write
    return counts


def build_embeddings(
    partitions: dg.MultiPartitionsDefinition,
    model_version: str,
    retry_policy: dg.RetryPolicy,
    backfill_policy: dg.BackfillPolicy,
) -> dg.AssetsDefinition:
    @dg.asset(
        name="embeddings",
        deps=["chunks"],
        partitions_def=partitions,
        group_name="ingestion",
        code_version=model_version,
        retry_policy=retry_policy,
        backfill_policy=backfill_policy,
        pool="embedding_api",
        kinds={"pgvector"},
    )
    async def embeddings(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        embedding: EmbeddingResource,
        progress: dg.ResourceParam[ProgressListener],
    ) -> dg.MaterializeResult:
        """Vectors of every live chunk text for the active model, each distinct text once."""
        embedder = embedding.embedder
        db = postgres.database()
        started = time.perf_counter()
        embedded_total = 0
        with db.connect() as reader, db.connect(autocommit=True) as writer:
            table = ensure_model_table(writer, embedder.model, embedder.dimension)
            for source_name, shards in shards_by_source(context.partition_keys).items():
                stage = StageProgress(progress, context.log, "embedding")
                counts = await embed_source(
                    reader, writer, embedder, table, source_name, shards, embedding, stage
                )
                seconds = stage.finish()
                embedded = sum(v for (_, kind), v in counts.items() if kind == "embedded")
                embedded_total += embedded
                coverage = coverage_by_shard(reader, table, source_name, shards)
                for shard in shards:
                    live, with_vector, distinct = coverage.get(shard, (0, 0, 0))
                    context.add_asset_metadata(
                        {
                            "texts_embedded": counts[(shard, "embedded")],
                            "texts_reused": max(distinct - counts[(shard, "embedded")], 0),
                            "tokens_embedded": counts[(shard, "tokens")],
                            "chunks": live,
                            "chunks_with_vector": with_vector,
                            "model": embedder.model,
                            "vector_table": table,
                        },
                        partition_key=partition_key(source_name, shard),
                    )
                context.log.info(f"{source_name}: embedded {embedded} texts in {seconds:.1f}s")
        elapsed = time.perf_counter() - started
        stats = embedder.stats
        context.log.info(
            f"embedding: {stats.requests} requests, {stats.texts} texts, "
            f"{embedded_total / max(elapsed, 1e-9):.1f} texts/s"
        )
        return dg.MaterializeResult()

    return embeddings
