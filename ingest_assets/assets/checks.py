"""Asset checks that guard the index for the active model."""

from collections.abc import Mapping

import dagster as dg

from ingest_assets.resources.postgres import PostgresResource
from ingest_assets.sensors import RANGE_END, RANGE_START
from ingest_assets.store.checks import (
    chunks_of_deleted_documents,
    chunks_without_vector,
    quarantined,
    vector_dimensions,
)
from ingest_assets.store.vectors import model_table

PARTITION_TAG = "dagster/partition"


def run_scope(tags: Mapping[str, str]) -> dict[str, list[int]] | None:
    """{source: shards} that a run's partition tags cover; None for an unpartitioned run."""
    first = tags.get(RANGE_START) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END) or tags.get(PARTITION_TAG)
    if not first or not last or "|" not in first:
        return None
    (source, low), (_, high) = first.split("|"), last.split("|")
    return {source: list(range(int(low), int(high) + 1))}


def build_checks(model: str) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset="embeddings",
        name="every_chunk_has_a_vector",
        description=f"Every live chunk has a vector for the active model ({model}).",
    )
    def every_chunk_has_a_vector(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource
    ) -> dg.AssetCheckResult:
        # In a partitioned run, judge the run's own shards: a backfill's other runs may not
        # have embedded theirs yet. Run alone (index_checks), judge the whole index.
        scope = run_scope(context.run.tags)
        with postgres.database().connect() as conn:
            found = model_table(conn, model)
            if found is None:
                return dg.AssetCheckResult(
                    passed=False, metadata={"reason": f"no vector table for model {model!r}"}
                )
            missing, samples = chunks_without_vector(conn, found[0], scope)
        return dg.AssetCheckResult(
            passed=missing == 0,
            metadata={
                "chunks_without_vector": missing,
                "documents": dg.MetadataValue.json(samples),
                "scope": "whole index" if scope is None else f"this run's shards: {scope}",
            },
        )

    @dg.asset_check(
        asset="embeddings",
        name="vector_dimension_matches_model",
        description="All stored vectors have the dimension recorded for the active model.",
    )
    def vector_dimension_matches_model(postgres: PostgresResource) -> dg.AssetCheckResult:
        with postgres.database().connect() as conn:
            found = model_table(conn, model)
            if found is None:
                return dg.AssetCheckResult(passed=True, metadata={"vectors": 0})
            table, expected = found
            seen = vector_dimensions(conn, table)
        return dg.AssetCheckResult(
            passed=all(d == expected for d in seen),
            metadata={"expected": expected, "found": dg.MetadataValue.json(seen)},
        )

    @dg.asset_check(
        asset="chunks",
        name="no_chunks_of_deleted_documents",
        description="Deleted and quarantined documents have no chunks left in search.",
    )
    def no_chunks_of_deleted_documents(postgres: PostgresResource) -> dg.AssetCheckResult:
        with postgres.database().connect() as conn:
            orphans = chunks_of_deleted_documents(conn)
        return dg.AssetCheckResult(passed=orphans == 0, metadata={"orphan_chunks": orphans})

    @dg.asset_check(
        asset="raw_documents",
        name="quarantined_documents",
        description="Lists quarantined documents with their reasons (a warning, not an error).",
    )
    def quarantined_documents(postgres: PostgresResource) -> dg.AssetCheckResult:
        with postgres.database().connect() as conn:
            rows = quarantined(conn)
        listing = "\n".join(f"- {source}: {reason}" for source, _, reason in rows[:200])
        return dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined": len(rows),
                "documents": dg.MetadataValue.md(listing or "none"),
            },
        )

    return [
        every_chunk_has_a_vector,
        vector_dimension_matches_model,
        no_chunks_of_deleted_documents,
        quarantined_documents,
    ]
