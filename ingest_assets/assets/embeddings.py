"""Stage 3: embed every chunk text that has no vector yet for the active model."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import psycopg

from ingest_assets.lib.batching import AdaptiveBatchSize, batch_indices
from ingest_assets.lib.chunking import embedding_input
from ingest_assets.partitions import partition_key, shards_by_source
from ingest_assets.progress import ProgressListener, StageProgress
from ingest_assets.resources.embeddings import EmbeddingResource
from ingest_assets.resources.postgres import PostgresResource
from ingest_assets.resources.providers import Embedder, EmbeddingError, PermanentEmbeddingError
from ingest_assets.resources.providers.base import BatchTooLarge, embed_isolating
from ingest_assets.store.chunks import quarantine_texts
from ingest_assets.store.locks import shard_locks
from ingest_assets.store.vectors import (
    DimensionMismatch,
    PendingText,
    count_pending_texts,
    coverage_by_shard,
    ensure_model_table,
    model_table,
    pending_texts,
    write_vectors,
)

_WRITE_QUEUE = 8  # embedded batches waiting for the database, at most
EMBEDDING_POOL = "embedding_api"  # Dagster concurrency pool: steps talking to the endpoint


@dataclass
class EmbedOutcome:
    per_shard: Counter[tuple[int, str]] = field(default_factory=Counter)
    written: int = 0
    rejected: dict[bytes, str] = field(default_factory=dict)  # text hash -> server's reason
    error: BaseException | None = None
    batch_size: int = 0  # texts per request at the end, as the step adapted it


def length_sorted_batches(
    block: list[PendingText], max_items: int, max_tokens: int
) -> Iterator[list[PendingText]]:
    """Batches of similar length, so no request pads short texts to a long one's size."""
    ordered = sorted(block, key=lambda p: p.token_count)
    for batch in batch_indices([p.token_count for p in ordered], max_items, max_tokens):
        yield [ordered[i] for i in batch]


async def embed_source(
    reader: psycopg.Connection,
    writer: psycopg.Connection,
    embedder: Embedder,
    table: str,
    source: str,
    shards: list[int],
    limits: EmbeddingResource,
    stage: StageProgress,
) -> EmbedOutcome:
    """Stream the missing texts, keep `max_concurrency` requests in flight, and write each
    finished batch while the next ones are being embedded. The batch size starts at the
    configured one and adapts to the server (AdaptiveBatchSize)."""
    outcome = EmbedOutcome()
    sizer = AdaptiveBatchSize(limits.batch_size, limits.max_batch_tokens)
    stage.start(count_pending_texts(reader, table, source, shards))
    finished: asyncio.Queue[tuple[list[PendingText], np.ndarray] | None] = asyncio.Queue(
        _WRITE_QUEUE
    )

    async def write_finished() -> None:
        while (item := await finished.get()) is not None:
            batch, vectors = item
            hashes = [p.text_hash for p in batch]
            added = await asyncio.to_thread(write_vectors, writer, table, hashes, vectors)
            outcome.written += len(added)
            for pending in batch:
                # A text a concurrent run stored first counts as reused, not embedded here.
                if pending.text_hash in added:
                    outcome.per_shard[(pending.shard, "embedded")] += 1
                outcome.per_shard[(pending.shard, "tokens")] += pending.token_count

    async def embed_sized(texts: Sequence[str]) -> np.ndarray:
        try:
            return await embedder.embed(texts)
        except BatchTooLarge:
            sizer.too_large(len(texts))
            raise

    async def embed_batch(batch: list[PendingText]) -> None:
        texts = [embedding_input(p.context, p.text) for p in batch]
        try:
            vectors, errors = await embed_isolating(embed_sized, texts, embedder.dimension)
        except BaseException as err:
            outcome.error = outcome.error or err
            return
        finally:
            slots.release()
        for position, reason in errors.items():
            outcome.rejected[batch[position].text_hash] = reason
        sizer.record(len(batch), time.monotonic())
        keep = [i for i in range(len(batch)) if i not in errors]
        if keep:
            await finished.put(([batch[i] for i in keep], vectors[keep]))
        stage.advance(len(batch))

    slots = asyncio.Semaphore(embedder.max_concurrency)
    writing = asyncio.create_task(write_finished())
    in_flight: set[asyncio.Task[None]] = set()
    try:
        for block in pending_texts(reader, table, source, shards):
            for batch in length_sorted_batches(block, sizer.items, sizer.tokens):
                await slots.acquire()
                if outcome.error is not None or writing.done():
                    slots.release()
                    break
                task = asyncio.create_task(embed_batch(batch))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if outcome.error is not None or writing.done():
                break
        await asyncio.gather(*in_flight)
    finally:
        if not writing.done():
            await finished.put(None)
        await writing  # re-raises a database error from the writer
    outcome.batch_size = sizer.items
    return outcome


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
        pool=EMBEDDING_POOL,
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
        failures: list[str] = []
        permanent = False  # a failure asking again cannot fix: no stage retries
        groups = shards_by_source(context.partition_keys)
        with (
            db.connect() as reader,
            db.connect(autocommit=True) as writer,
            db.connect(autocommit=True) as locks,
        ):
            known = model_table(reader, embedder.model)
            # One coverage query per source says whether anything is missing; in a re-run
            # with nothing to embed it is also the metadata, and the only full scan.
            before = {
                source: coverage_by_shard(reader, known[0], source, shards)
                for source, shards in groups.items()
                if known is not None
            }
            if known is None or any(_missing(c) for c in before.values()):
                try:
                    await embedder.prepare()
                except PermanentEmbeddingError as err:
                    raise dg.Failure(str(err), allow_retries=False) from err
                except EmbeddingError as err:
                    raise dg.Failure(f"embedding provider unavailable: {err}") from err
            try:
                # With nothing to embed the provider stays unopened: check the known size.
                dimension = embedder.dimension or (known[1] if known else 0)
                table = ensure_model_table(writer, embedder.model, dimension)
            except DimensionMismatch as err:
                raise dg.Failure(str(err), allow_retries=False) from err
            for source_name, shards in groups.items():
                stage = StageProgress(progress, context.log, "embedding")
                coverage = before.get(source_name)
                if coverage is not None and not _missing(coverage):
                    stage.start(0)
                    outcome = EmbedOutcome()
                else:
                    with shard_locks(locks, "embeddings", source_name, shards):
                        outcome = await embed_source(
                            reader, writer, embedder, table, source_name, shards, embedding, stage
                        )
                    coverage = None
                seconds = stage.finish()
                quarantined = quarantine_texts(writer, source_name, shards, outcome.rejected)
                if outcome.error is not None:
                    failures.append(f"{source_name}: {outcome.error}")
                    permanent = permanent or isinstance(outcome.error, PermanentEmbeddingError)
                if coverage is None:
                    coverage = coverage_by_shard(reader, table, source_name, shards)
                for shard in shards:
                    embedded = outcome.per_shard[(shard, "embedded")]
                    live, with_vector, distinct = coverage.get(shard, (0, 0, 0))
                    context.add_asset_metadata(
                        {
                            "texts_embedded": embedded,
                            "texts_reused": max(distinct - embedded, 0),
                            "tokens_embedded": outcome.per_shard[(shard, "tokens")],
                            "chunks": live,
                            "chunks_with_vector": with_vector,
                            "quarantined_while_embedding": dg.MetadataValue.md(
                                "\n".join(f"- {r}" for _, s, r in quarantined if s == shard)
                                or "none"
                            ),
                            "model": embedder.model,
                            "batch_size_chosen": outcome.batch_size,
                            "vector_table": table,
                            **_request_metadata(embedder, seconds),
                        },
                        partition_key=partition_key(source_name, shard),
                    )
                context.log.info(
                    f"{source_name}: {outcome.written} vectors written, "
                    f"{len(quarantined)} documents quarantined in {seconds:.1f}s"
                )
        context.log.info(
            f"embedding: {embedder.stats.requests} requests, retries "
            f"{dict(embedder.stats.retries)}, {time.perf_counter() - started:.1f}s"
        )
        if failures:
            raise dg.Failure(
                "embedding failed; vectors stored so far are kept and a re-run embeds only "
                "what is missing:\n" + "\n".join(failures),
                metadata=_request_metadata(embedder, time.perf_counter() - started),
                allow_retries=not permanent,
            )
        return dg.MaterializeResult()

    return embeddings


def _missing(coverage: dict[int, tuple[int, int, int]]) -> bool:
    """Whether some live chunk of these shards has no vector (coverage_by_shard's answer)."""
    return any(with_vector < live for live, with_vector, _ in coverage.values())


def _request_metadata(embedder: Embedder, seconds: float) -> dict[str, object]:
    """The step's request statistics (shared by every partition of the step)."""
    stats = embedder.stats
    return {
        "requests": stats.requests,
        "retries": dg.MetadataValue.json(dict(stats.retries)),
        "latency_p50_ms": round(stats.latency_percentile(50) * 1000, 1),
        "latency_p95_ms": round(stats.latency_percentile(95) * 1000, 1),
        "texts_per_second": round(stats.texts / max(seconds, 1e-9), 1),
    }
