"""The embedding stage: embed every live chunk text that has no vector yet for the model, each
distinct text once, with requests in flight while finished batches are written."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import psycopg

from ingest_assets.database import Database
from ingest_assets.embedders import (
    Embedder,
    EmbeddingSettings,
    PermanentEmbeddingError,
    open_embedder,
)
from ingest_assets.embedders.base import BatchTooLarge, embed_isolating
from ingest_assets.lib.batching import AdaptiveBatchSize, sized_batches
from ingest_assets.lib.chunking import model_input
from ingest_assets.pipeline.progress import StageProgress
from ingest_assets.store.chunks import quarantine_texts
from ingest_assets.store.locks import shard_locks
from ingest_assets.store.serving import (
    kept_current,
    recordable,
    serve_if_none,
    serving_model,
    settings_for,
)
from ingest_assets.store.vectors import (
    PendingText,
    count_pending_texts,
    coverage_by_shard,
    ensure_model_table,
    learned_batch_items,
    model_table,
    pending_texts,
    record_batch_items,
    write_vectors,
)

_WRITE_QUEUE = 8  # embedded batches waiting for the database, at most


@dataclass
class EmbedOutcome:
    per_shard: Counter[tuple[int, str]] = field(default_factory=Counter)
    written: int = 0
    rejected: dict[bytes, str] = field(default_factory=dict)  # text hash -> server's reason
    error: BaseException | None = None
    batch_size: int = 0  # texts per request at the end, as the step adapted it
    batch_settled: bool = False  # chosen by measurement (not cut short while climbing)


def length_sorted_batches(
    block: list[PendingText], sizer: AdaptiveBatchSize
) -> Iterator[list[PendingText]]:
    """Batches of similar length, so no request pads short texts to a long one's size, each
    cut at the size the sizer holds when it is asked for (not when the block was read)."""
    ordered = sorted(block, key=lambda p: p.token_count)
    lengths = [p.token_count for p in ordered]
    for batch in sized_batches(lengths, lambda: (sizer.items, sizer.tokens)):
        yield [ordered[i] for i in batch]


async def embed_source(
    reader: psycopg.Connection,
    writer: psycopg.Connection,
    embedder: Embedder,
    table: str,
    source: str,
    shards: list[int],
    limits: EmbeddingSettings,
    stage: StageProgress,
    learned: int | None = None,
) -> EmbedOutcome:
    """Stream the missing texts, keep `max_concurrency` requests in flight, and write each
    finished batch while the next ones are being embedded. The batch size starts at the
    configured one, or at the one `learned` by earlier steps, and adapts to the server
    (AdaptiveBatchSize)."""
    outcome = EmbedOutcome()
    sizer = AdaptiveBatchSize(limits.batch_size, limits.max_batch_tokens, learned=learned)
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
        texts = [model_input(p.context, p.text) for p in batch]
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
            for batch in length_sorted_batches(block, sizer):
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
    outcome.batch_settled = sizer.settled
    return outcome


@dataclass
class SourceEmbedded:
    """One source's shards after the stage. `coverage` is per shard: (live chunks, with a
    vector, distinct texts); `quarantined` is (doc_id, shard, reason)."""

    source: str
    shards: list[int]
    outcome: EmbedOutcome
    seconds: float
    coverage: dict[int, tuple[int, int, int]]
    quarantined: list[tuple[str, int, str]]


@dataclass
class EmbedReport:
    table: str
    model: str
    sources: list[SourceEmbedded] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    permanent: bool = False  # a failure asking again cannot fix


async def embed_partitions(
    db: Database,
    embedder: Embedder,
    settings: EmbeddingSettings,
    groups: dict[str, list[int]],
    stage_for: Callable[[], StageProgress],
) -> EmbedReport:
    """The stage for some sources' shards, each under its locks. The provider is prepared
    only when something is missing. Raises the provider's EmbeddingError (it could not be
    reached) and store.vectors.DimensionMismatch; a failure while embedding is reported."""
    with (
        db.connect() as reader,
        db.connect(autocommit=True) as writer,
        db.connect(autocommit=True) as locks,
    ):
        known = model_table(reader, embedder.model)
        # One coverage query per source says whether anything is missing; in a re-run with
        # nothing to embed it is also the metadata, and the only full scan.
        before = {
            source: coverage_by_shard(reader, known[0], source, shards)
            for source, shards in groups.items()
            if known is not None
        }
        if known is None or any(_missing(c) for c in before.values()):
            await embedder.prepare()
        # With nothing to embed the provider stays unopened: check the known size.
        dimension = embedder.dimension or (known[1] if known else 0)
        table = ensure_model_table(writer, embedder.model, dimension, recordable(settings))
        report = EmbedReport(table, embedder.model)
        learned_for = batch_key(settings)
        learned = learned_batch_items(reader, embedder.model, learned_for)
        for source, shards in groups.items():
            stage = stage_for()
            coverage = before.get(source)
            if coverage is not None and not _missing(coverage):
                stage.start(0)
                outcome = EmbedOutcome()
            else:
                # One lock per model: two runs embedding the same model for a shard take
                # turns, but a long build of another model never holds back the serving one.
                with shard_locks(locks, f"embeddings:{embedder.model}", source, shards):
                    outcome = await embed_source(
                        reader,
                        writer,
                        embedder,
                        report.table,
                        source,
                        shards,
                        settings,
                        stage,
                        learned,
                    )
                if outcome.batch_settled and outcome.batch_size != learned:
                    learned = outcome.batch_size
                    record_batch_items(writer, embedder.model, learned_for, learned)
                coverage = None
            seconds = stage.finish()
            quarantined = quarantine_texts(writer, source, shards, outcome.rejected)
            if outcome.error is not None:
                report.failures.append(f"{source}: {outcome.error}")
                report.permanent |= isinstance(outcome.error, PermanentEmbeddingError)
            if coverage is None:
                coverage = coverage_by_shard(reader, report.table, source, shards)
            report.sources.append(
                SourceEmbedded(source, shards, outcome, seconds, coverage, quarantined)
            )
    return report


def batch_key(settings: EmbeddingSettings) -> dict[str, object]:
    """What a learned batch size holds for: the same server and the same configured sizes."""
    return {
        "provider": settings.provider,
        "url": settings.url,
        "batch_size": settings.batch_size,
        "max_batch_tokens": settings.max_batch_tokens,
        "concurrency": settings.concurrency,
    }


def _missing(coverage: dict[int, tuple[int, int, int]]) -> bool:
    """Whether some live chunk of these shards has no vector (coverage_by_shard's answer)."""
    return any(with_vector < live for live, with_vector, _ in coverage.values())


async def embed_kept_models(
    db: Database,
    embedder: Embedder,
    settings: EmbeddingSettings,
    groups: dict[str, list[int]],
    stage_for: Callable[[str], StageProgress],
) -> list[EmbedReport]:
    """The stage for every model kept current: the serving model first (a new document is
    searchable soonest), the previous one (rollback stays instant), then `embedder`'s, the
    model being built. Another model is reached with the settings recorded with its vectors.
    The first model built starts serving when its first run succeeds."""
    with db.connect() as conn:
        models = kept_current(conn, embedder.model)
        others = {m: settings_for(conn, m, settings) for m in models if m != embedder.model}
        first_model = serving_model(conn) is None
    reports = []
    for model in models:
        if model == embedder.model:
            stage = partial(stage_for, "embedding")
            reports.append(await embed_partitions(db, embedder, settings, groups, stage))
            continue
        stage = partial(stage_for, f"embedding for {model}")
        async with open_embedder(others[model], prepare=False) as other:
            reports.append(await embed_partitions(db, other, others[model], groups, stage))
    if first_model and not reports[-1].failures:
        with db.connect(autocommit=True) as conn:
            serve_if_none(conn, embedder.model)
    return reports
