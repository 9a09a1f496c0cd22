"""Model changes as a gated switch: what a model still needs (the plan), how to reach a model
that is not the one configured, and activation behind the coverage and retrieval gates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from ingest_assets.database import Database
from ingest_assets.embedders import EmbeddingSettings
from ingest_assets.pipeline.quality import GateResult, check_gate
from ingest_assets.store import serving as store
from ingest_assets.store.serving import Activation, ActivationRefused, settings_for
from ingest_assets.store.sources import list_sources
from ingest_assets.store.vectors import model_table, texts_without_vector

__all__ = ["ActivationRefused", "ModelPlan", "activate_model", "plan_model", "waiting_for"]


@dataclass(frozen=True)
class SourcePlan:
    source: str
    chunks: int
    texts: int  # distinct texts without a vector for the model
    tokens: int
    reused: int  # distinct texts that already have one (identical text is embedded once)


@dataclass
class ModelPlan:
    model: str
    serving: str | None
    sources: list[SourcePlan] = field(default_factory=list)
    texts: int = 0  # distinct over all sources: what a backfill of every source sends
    tokens: int = 0
    price_per_million_tokens: float | None = None

    @property
    def cost(self) -> float | None:
        price = self.price_per_million_tokens
        return None if price is None else self.tokens / 1e6 * price

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cost": self.cost}


def plan_model(conn: psycopg.Connection, settings: EmbeddingSettings) -> ModelPlan:
    """The texts and tokens `settings.model` still needs, per source and in all: each distinct
    live chunk input without a vector in its table, counted with the chunking tokenizer."""
    found = model_table(conn, settings.model)
    per_source, total = texts_without_vector(conn, found[0] if found else None)
    current = store.serving_model(conn)
    return ModelPlan(
        model=settings.model,
        serving=current.model if current else None,
        sources=[SourcePlan(*row) for row in per_source],
        texts=total[0],
        tokens=total[1],
        price_per_million_tokens=settings.price_per_million_tokens,
    )


def gate_figures(gates: list[GateResult]) -> dict[str, Any]:
    """Each gate's scores, thresholds and misses, as recorded with an activation."""
    figures = {}
    for gate in gates:
        score = gate.score.as_dict() if gate.score else {}
        figures[gate.source] = {
            **{k: v for k, v in score.items() if k != "ranks"},
            "judged": gate.evaluated,
            "reason": gate.reason,
            "missed": gate.missed,
            "severity": gate.gate.severity if gate.gate else None,
        }
    return figures


def model_gates(
    db: Database, model: str, build: EmbeddingSettings, shards: int
) -> list[GateResult]:
    """Every source's retrieval gate, judged with `model`'s vectors."""
    with db.connect() as conn:
        records = list_sources(conn)
        embedding = settings_for(conn, model, build)
    results = [check_gate(db, record, embedding, shards) for record in records]
    return [r for r in results if r is not None]


def waiting_for(conn: psycopg.Connection, building: str) -> tuple[str, int]:
    """Why the model being built cannot be activated yet ("" when it can be tried: a switch
    is due and it covers every live chunk), and the live chunks counted."""
    current = store.serving_model(conn)
    found = model_table(conn, building)
    if current is None or current.model == building or found is None:
        return f"{building} is serving, or has no vectors yet", 0
    chunks, missing = store.coverage(conn, found[0])
    if missing:
        return f"{building}: {missing} of {chunks} chunks without a vector", chunks
    return "", chunks


def activate_model(
    db: Database, model: str, build: EmbeddingSettings, shards: int, *, force: bool = False
) -> Activation:
    """Switch serving to `model` when every live chunk has its vector and every error-severity
    retrieval gate passes with it (warn gates are recorded, not enforced); `force` overrides
    both and is recorded. The figures of the model serving before are recorded beside."""
    with db.connect() as conn:
        before = store.serving_model(conn)
        found = model_table(conn, model)
        if found is None:
            raise store.unknown(model)
        chunks, missing = store.coverage(conn, found[0])
    if missing and not force:
        raise store.incomplete(model, chunks, missing)
    gates = model_gates(db, model, build, shards)
    refused = [
        f"{g.source}: {', '.join(g.missed) or g.reason}"
        for g in gates
        if (g.missed or not g.evaluated) and g.gate and g.gate.severity == "error"
    ]
    if refused and not force:
        raise ActivationRefused(
            f"model {model!r} misses the retrieval gate of "
            + "; ".join(refused)
            + " (`ingest eval` to compare; --force to activate anyway)"
        )
    figures: dict[str, Any] = {"gates": gate_figures(gates), "refusals_overridden": refused}
    if before and before.model != model:
        figures["serving_before"] = before.model
        figures["gates_before"] = gate_figures(model_gates(db, before.model, build, shards))
    with db.connect() as conn:
        return store.activate(conn, model, force=force, figures=figures)
