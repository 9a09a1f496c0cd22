"""Stage 3 as Dagster sees it: the `embeddings` asset over pipeline.embed."""

import time
from typing import Any

import dagster as dg

from ingest_assets.defs.partitions import partition_key, shards_by_source
from ingest_assets.defs.resources.embeddings import EMBEDDING_POOL, EmbeddingResource
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.embedders import Embedder, EmbeddingError, PermanentEmbeddingError
from ingest_assets.pipeline.embed import EmbedReport, embed_kept_models
from ingest_assets.pipeline.progress import ProgressListener, StageProgress
from ingest_assets.store.vectors import DimensionMismatch


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
        """Vectors of every live chunk text for the model being built, each distinct text
        once; new texts also for the serving (and previous) model while another is built."""
        embedder = embedding.embedder
        started = time.perf_counter()
        groups = shards_by_source(context.partition_keys)
        try:
            reports = await embed_kept_models(
                postgres.database(),
                embedder,
                embedding,
                groups,
                lambda label: StageProgress(progress, context.log, label),
            )
        except PermanentEmbeddingError as err:
            raise dg.Failure(str(err), allow_retries=False) from err
        except EmbeddingError as err:
            raise dg.Failure(f"embedding provider unavailable: {err}") from err
        except DimensionMismatch as err:
            raise dg.Failure(str(err), allow_retries=False) from err
        *others, report = reports
        for done in report.sources:
            outcome = done.outcome
            for shard in done.shards:
                embedded = outcome.per_shard[(shard, "embedded")]
                live, with_vector, distinct = done.coverage.get(shard, (0, 0, 0))
                context.add_asset_metadata(
                    {
                        "texts_embedded": embedded,
                        "texts_reused": max(distinct - embedded, 0),
                        "tokens_embedded": outcome.per_shard[(shard, "tokens")],
                        "chunks": live,
                        "chunks_with_vector": with_vector,
                        "quarantined_while_embedding": dg.MetadataValue.md(
                            "\n".join(f"- {r}" for _, s, r in done.quarantined if s == shard)
                            or "none"
                        ),
                        "model": embedder.model,
                        "batch_size_chosen": outcome.batch_size,
                        "vector_table": report.table,
                        **_kept_models_metadata(others, done.source, shard),
                        **_request_metadata(embedder, done.seconds),
                    },
                    partition_key=partition_key(done.source, shard),
                )
            context.log.info(
                f"{done.source}: {outcome.written} vectors written, "
                f"{len(done.quarantined)} documents quarantined in {done.seconds:.1f}s"
            )
        context.log.info(
            f"embedding: {embedder.stats.requests} requests, retries "
            f"{dict(embedder.stats.retries)}, {time.perf_counter() - started:.1f}s"
        )
        failures = [f"{r.model}: {f}" if others else f for r in reports for f in r.failures]
        if failures:
            raise dg.Failure(
                "embedding failed; vectors stored so far are kept and a re-run embeds only "
                "what is missing:\n" + "\n".join(failures),
                metadata=_request_metadata(embedder, time.perf_counter() - started),
                allow_retries=not any(r.permanent for r in reports),
            )
        return dg.MaterializeResult()

    return embeddings


def _kept_models_metadata(others: list[EmbedReport], source: str, shard: int) -> dict[str, Any]:
    """While another model is built, what this partition did for the models kept current."""
    if not others:
        return {}
    figures = {}
    for report in others:
        for done in report.sources:
            if done.source == source and shard in done.shards:
                live, with_vector, _ = done.coverage.get(shard, (0, 0, 0))
                figures[report.model] = {
                    "texts_embedded": done.outcome.per_shard[(shard, "embedded")],
                    "chunks_with_vector": with_vector,
                    "chunks": live,
                }
    return {"models_kept_current": dg.MetadataValue.json(figures)}


def _request_metadata(embedder: Embedder, seconds: float) -> dict[str, Any]:
    """The step's request statistics (shared by every partition of the step)."""
    stats = embedder.stats
    return {
        "requests": stats.requests,
        "retries": dg.MetadataValue.json(dict(stats.retries)),
        "latency_p50_ms": round(stats.latency_percentile(50) * 1000, 1),
        "latency_p95_ms": round(stats.latency_percentile(95) * 1000, 1),
        "texts_per_second": round(stats.texts / max(seconds, 1e-9), 1),
    }
