"""The one place the Dagster Definitions are built, from the deployment's settings."""

from __future__ import annotations

import warnings

import dagster as dg

from ingest_assets import fanout
from ingest_assets.defs.assets.checks import build_checks
from ingest_assets.defs.assets.chunks import build_chunks
from ingest_assets.defs.assets.embeddings import build_embeddings
from ingest_assets.defs.assets.raw_documents import build_raw_documents
from ingest_assets.defs.partitions import build_partitions
from ingest_assets.defs.resources.embeddings import EmbeddingResource
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.defs.sensors import build_sensors
from ingest_assets.defs.serving import build_serving
from ingest_assets.lib.chunking import Chunker
from ingest_assets.pipeline.progress import NoProgress, ProgressListener
from ingest_assets.settings import IngestSettings, load_settings

INGEST_JOB = "ingest_job"
CHECKS_JOB = "index_checks"

# BackfillPolicy is beta in Dagster 1.13; the design relies on it to batch shards into runs.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")


def build_resources(settings: IngestSettings) -> dict[str, dg.ConfigurableResource]:
    """Resources from settings; secrets travel as EnvVar so the UI never shows their values."""
    return {
        "postgres": PostgresResource(
            database_url=dg.EnvVar("INGEST_DATABASE_URL") if settings.database_url else None,
            home=str(settings.resolved_home),
            db_schema=settings.db_schema,
            shards=settings.shards,
        ),
        "embedding": EmbeddingResource.from_settings(settings.embedding),
    }


def build_definitions(
    settings: IngestSettings | None = None, progress: ProgressListener | None = None
) -> dg.Definitions:
    settings = settings or load_settings()
    partitions = build_partitions(settings.shards)
    # A backfill (from the UI or `ingest backfill`) is cut into runs as the fan-out plan says.
    backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=fanout.SHARDS_PER_RUN)
    chunker = Chunker(settings.chunk_tokens)
    retry_policy = dg.RetryPolicy(
        max_retries=settings.stage_retries,
        delay=settings.stage_retry_delay_s,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )
    model_version = f"{settings.embedding.provider}:{settings.embedding.model}"
    assets = [
        build_raw_documents(partitions, settings.shards, retry_policy, backfill_policy),
        build_chunks(partitions, chunker, retry_policy, backfill_policy),
        build_embeddings(partitions, model_version, retry_policy, backfill_policy),
    ]
    checks = build_checks(settings.embedding.model, settings.shards)
    ingest_job = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.assets(*assets),
        partitions_def=partitions,
        executor_def=dg.in_process_executor,
        description="Carries shards from source documents to stored embeddings in one process.",
    )
    checks_job = dg.define_asset_job(
        CHECKS_JOB,
        selection=dg.AssetSelection.checks(*checks),
        executor_def=dg.in_process_executor,
        description="Runs the index checks alone, e.g. after a hand edit or a backfill.",
    )
    index_serving, serving_jobs, switch_sensor = build_serving(settings)
    return dg.Definitions(
        # Backfill runs use the implicit asset job: in-process there too (~0.1 s per step
        # instead of a subprocess per step).
        executor=dg.in_process_executor,
        assets=[*assets, index_serving],
        asset_checks=checks,
        jobs=[ingest_job, checks_job, *serving_jobs],
        sensors=[*build_sensors(settings, INGEST_JOB), switch_sensor],
        resources={**build_resources(settings), "progress": progress or NoProgress()},
    )


def __getattr__(name: str) -> dg.Definitions:
    """`defs`, built from the environment's settings when Dagster first asks for it (workspace
    files name it with `attribute: defs`), not when a command imports this module: a bad
    setting then fails the command that needs it, with its own message."""
    if name == "defs":
        globals()["defs"] = definitions = build_definitions()
        return definitions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
