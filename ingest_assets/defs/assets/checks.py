"""Asset checks that guard the index for the active model, and its retrieval quality."""

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import dagster as dg
import psycopg

from ingest_assets.defs.partitions import RANGE_END, RANGE_START
from ingest_assets.defs.resources.embeddings import EmbeddingResource
from ingest_assets.defs.resources.postgres import PostgresResource
from ingest_assets.pipeline.quality import GateResult, check_gate
from ingest_assets.store.checks import (
    chunks_of_deleted_documents,
    chunks_without_vector,
    quarantined,
    vector_dimensions,
)
from ingest_assets.store.sources import get_source, list_sources
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


def build_checks(model: str, shards: int) -> list[dg.AssetChecksDefinition]:
    # One step for the checks: a run's fixed cost is mostly per step (a run over a shard
    # range paid ~0.3 s for each of four check steps on 2 cores).
    @dg.multi_asset_check(
        name="index_guards",
        specs=[
            dg.AssetCheckSpec(
                "every_chunk_has_a_vector",
                asset="embeddings",
                description=f"Every live chunk has a vector for the active model ({model}).",
            ),
            dg.AssetCheckSpec(
                "vector_dimension_matches_model",
                asset="embeddings",
                description="All stored vectors have the dimension recorded for the active model.",
            ),
            dg.AssetCheckSpec(
                "no_chunks_of_deleted_documents",
                asset="chunks",
                description="Deleted and quarantined documents have no chunks left in search.",
            ),
            dg.AssetCheckSpec(
                "retrieval_quality",
                asset="embeddings",
                description=(
                    "Scores search on the evaluation queries of the sources that declare them "
                    "(sources.yaml `eval:`), once a source is fully embedded; fails the run "
                    "when a threshold is missed (`severity: warn` only warns)."
                ),
            ),
            dg.AssetCheckSpec(
                "quarantined_documents",
                asset="raw_documents",
                description=(
                    "Lists quarantined documents with their reasons (a warning, not an error)."
                ),
            ),
        ],
        can_subset=True,
    )
    def index_checks(
        context: dg.AssetCheckExecutionContext,
        postgres: PostgresResource,
        embedding: EmbeddingResource,
    ) -> Iterator[dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        gates: list[GateResult] = []
        if "retrieval_quality" in selected:
            gates = retrieval_gates(postgres, embedding, run_scope(context.run.tags), shards)
            yield retrieval_quality(gates)
        with postgres.database().connect() as conn:
            found = model_table(conn, model)
            if "every_chunk_has_a_vector" in selected:
                yield every_chunk_has_a_vector(conn, model, found, run_scope(context.run.tags))
            if "vector_dimension_matches_model" in selected:
                yield vector_dimension_matches_model(conn, found)
            if "no_chunks_of_deleted_documents" in selected:
                orphans = chunks_of_deleted_documents(conn)
                yield dg.AssetCheckResult(
                    asset_key="chunks",
                    check_name="no_chunks_of_deleted_documents",
                    passed=orphans == 0,
                    metadata={"orphan_chunks": orphans},
                )
            if "quarantined_documents" in selected:
                yield quarantined_documents(conn)
        failed = [g for g in gates if g.missed and g.gate and g.gate.severity == "error"]
        if failed:  # after every result is recorded: the run fails, the figures stay
            raise dg.Failure(
                "retrieval quality below its thresholds: "
                + "; ".join(f"{g.source}: {', '.join(g.missed)}" for g in failed),
                allow_retries=False,
            )

    return [index_checks]


def retrieval_gates(
    postgres: PostgresResource,
    embedding: EmbeddingResource,
    scope: dict[str, list[int]] | None,
    shards: int,
) -> list[GateResult]:
    """The gates of the run's source (every source's, run alone)."""
    db = postgres.database()
    with db.connect() as conn:
        records = (
            [r for r in map(partial(get_source, conn), scope) if r is not None]
            if scope is not None
            else list_sources(conn)
        )
    results = [check_gate(db, record, embedding, shards) for record in records]
    return [r for r in results if r is not None]


def retrieval_quality(gates: list[GateResult]) -> dg.AssetCheckResult:
    judged = [g for g in gates if g.evaluated]
    metadata: dict[str, Any] = {
        "sources_with_an_evaluation": len(gates),
        "judged": len(judged),
        "not_judged": dg.MetadataValue.md(
            "\n".join(f"- {g.source}: {g.reason}" for g in gates if not g.evaluated) or "none"
        ),
    }
    for gate in judged:
        assert gate.score is not None and gate.gate is not None
        figures = gate.score.as_dict()
        metadata[f"{gate.source}"] = dg.MetadataValue.json(
            {**{k: v for k, v in figures.items() if k != "ranks"}, "missed": gate.missed,
             "thresholds": gate.gate.thresholds, "queries_file": str(gate.gate.queries)}
        )  # fmt: skip
        for cutoff in (1, 5, 10):
            metadata[f"{gate.source}_recall_at_{cutoff}"] = figures[f"recall_at_{cutoff}"]
        metadata[f"{gate.source}_mrr_at_10"] = figures["mrr_at_10"]
    errors = [g for g in gates if g.missed and g.gate and g.gate.severity == "error"]
    return dg.AssetCheckResult(
        asset_key="embeddings",
        check_name="retrieval_quality",
        passed=not any(g.missed for g in gates),
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def every_chunk_has_a_vector(
    conn: psycopg.Connection,
    model: str,
    found: tuple[str, int] | None,
    scope: dict[str, list[int]] | None,
) -> dg.AssetCheckResult:
    """In a partitioned run, judge the run's own shards: a backfill's other runs may not have
    embedded theirs yet. Run alone (index_checks job), judge the whole index."""
    result = partial(
        dg.AssetCheckResult, asset_key="embeddings", check_name="every_chunk_has_a_vector"
    )
    if found is None:
        return result(passed=False, metadata={"reason": f"no vector table for model {model!r}"})
    missing, samples = chunks_without_vector(conn, found[0], scope)
    return result(
        passed=missing == 0,
        metadata={
            "chunks_without_vector": missing,
            "documents": dg.MetadataValue.json(samples),
            "scope": "whole index" if scope is None else f"this run's shards: {scope}",
        },
    )


def vector_dimension_matches_model(
    conn: psycopg.Connection, found: tuple[str, int] | None
) -> dg.AssetCheckResult:
    result = partial(
        dg.AssetCheckResult, asset_key="embeddings", check_name="vector_dimension_matches_model"
    )
    if found is None:
        return result(passed=True, metadata={"vectors": 0})
    table, expected = found
    seen = vector_dimensions(conn, table)
    return result(
        passed=all(d == expected for d in seen),
        metadata={"expected": expected, "found": dg.MetadataValue.json(seen)},
    )


def quarantined_documents(conn: psycopg.Connection) -> dg.AssetCheckResult:
    rows = quarantined(conn)
    listing = "\n".join(f"- {source}: {reason}" for source, _, reason in rows[:200])
    return dg.AssetCheckResult(
        asset_key="raw_documents",
        check_name="quarantined_documents",
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": len(rows), "documents": dg.MetadataValue.md(listing or "none")},
    )
