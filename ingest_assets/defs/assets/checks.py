"""Asset checks that guard the index for the models kept current (the serving one, and the one
being built beside it), and its retrieval quality for both, side by side."""

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
from ingest_assets.store.serving import kept_current, serving_or, settings_for
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
                description=(
                    f"Every live chunk has a vector for the model being built ({model}) and "
                    "for the serving model, when another one serves."
                ),
            ),
            dg.AssetCheckSpec(
                "vector_dimension_matches_model",
                asset="embeddings",
                description=f"All stored vectors of {model} have the dimension recorded for it.",
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
                    "(sources.yaml `eval:`), once a source is fully embedded, for the serving "
                    "model and the one being built, side by side; fails the run when the "
                    "serving model misses a threshold (`severity: warn` only warns). A model "
                    "being built that misses one only warns: `ingest model activate` refuses it."
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
        scope = run_scope(context.run.tags)
        gates: list[GateResult] = []
        with postgres.database().connect() as conn:
            serving = serving_or(conn, model)
            if "retrieval_quality" in selected:
                gates = retrieval_gates(postgres, embedding, serving, scope, shards)
                target = (
                    retrieval_gates(postgres, embedding, model, scope, shards)
                    if model != serving
                    else []
                )
                yield retrieval_quality(gates, target, serving, model)
            found = model_table(conn, model)
            if "every_chunk_has_a_vector" in selected:
                yield every_chunk_has_a_vector(conn, kept_current(conn, model), scope)
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
    model: str,
    scope: dict[str, list[int]] | None,
    shards: int,
) -> list[GateResult]:
    """The gates of the run's source (every source's, run alone), judged with `model`."""
    db = postgres.database()
    with db.connect() as conn:
        records = (
            [r for r in map(partial(get_source, conn), scope) if r is not None]
            if scope is not None
            else list_sources(conn)
        )
        settings = settings_for(conn, model, embedding)
    results = [check_gate(db, record, settings, shards) for record in records]
    return [r for r in results if r is not None]


def retrieval_quality(
    gates: list[GateResult], target: list[GateResult], serving: str, building: str
) -> dg.AssetCheckResult:
    """The serving model's figures decide; the model being built is reported beside them."""
    judged = [g for g in gates if g.evaluated]
    metadata: dict[str, Any] = {
        "serving_model": serving,
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
    if target:
        metadata["model_being_built"] = building
        metadata["side_by_side"] = dg.MetadataValue.md(
            side_by_side(gates, target, serving, building)
        )
        metadata["model_being_built_missed"] = dg.MetadataValue.json(
            {g.source: g.missed for g in target if g.missed}
        )
    errors = [g for g in gates if g.missed and g.gate and g.gate.severity == "error"]
    return dg.AssetCheckResult(
        asset_key="embeddings",
        check_name="retrieval_quality",
        passed=not any(g.missed for g in [*gates, *target]),
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def side_by_side(
    gates: list[GateResult], target: list[GateResult], serving: str, building: str
) -> str:
    """A Markdown table: each source's figures for the serving model and the one being built."""
    built = {g.source: g for g in target}
    lines = [f"| source | figure | {serving} (serving) | {building} (being built) |"]
    lines.append("| --- | --- | --- | --- |")
    for gate in gates:
        other = built.get(gate.source)
        for figure in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"):
            cells = [_figure(g, figure) for g in (gate, other)]
            lines.append(f"| {gate.source} | {figure} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _figure(gate: GateResult | None, figure: str) -> str:
    if gate is None or gate.score is None:
        return gate.reason if gate else "–"
    return f"{gate.score.as_dict()[figure]:.3f}"


def every_chunk_has_a_vector(
    conn: psycopg.Connection, models: list[str], scope: dict[str, list[int]] | None
) -> dg.AssetCheckResult:
    """For every model kept current. In a partitioned run, judge the run's own shards: a
    backfill's other runs may not have embedded theirs yet. Run alone (index_checks job),
    judge the whole index."""
    result = partial(
        dg.AssetCheckResult, asset_key="embeddings", check_name="every_chunk_has_a_vector"
    )
    by_model: dict[str, Any] = {}
    for model in models:
        found = model_table(conn, model)
        if found is None:
            by_model[model] = {"reason": "no vector table yet"}
            continue
        missing, samples = chunks_without_vector(conn, found[0], scope)
        by_model[model] = {"chunks_without_vector": missing, "documents": samples}
    return result(
        passed=all(figures.get("chunks_without_vector") == 0 for figures in by_model.values()),
        metadata={
            "chunks_without_vector": sum(
                f.get("chunks_without_vector", 0) for f in by_model.values()
            ),
            "by_model": dg.MetadataValue.json(by_model),
            "documents": dg.MetadataValue.json(
                sorted({d for f in by_model.values() for d in f.get("documents", [])})[:10]
            ),
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
