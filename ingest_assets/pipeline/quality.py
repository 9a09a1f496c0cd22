"""The retrieval gate: a source that names an evaluation file and thresholds in sources.yaml
(`eval: {queries: path, min_recall_at_5: 0.9}`) is scored on its own index after its runs,
and the gate says whether the thresholds hold. The `retrieval_quality` asset check reports it;
a model switch can wait for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest_assets.database import Database
from ingest_assets.embedders import EmbeddingSettings
from ingest_assets.evaluation import (
    EvalFileError,
    ModeScore,
    evaluate,
    failed_thresholds,
    load_queries,
)
from ingest_assets.lib.gates import EVAL_OPTION, Gate, parse_gate
from ingest_assets.sources.registry import SourceRecord
from ingest_assets.store.checks import chunks_without_vector
from ingest_assets.store.vectors import model_table


@dataclass
class GateResult:
    source: str
    evaluated: bool
    reason: str = ""
    score: ModeScore | None = None
    missed: list[str] = field(default_factory=list)
    gate: Gate | None = None

    @property
    def passed(self) -> bool:
        return not self.missed


def gate_of(record: SourceRecord) -> Gate | None:
    value = record.options.get(EVAL_OPTION)
    return None if value is None else parse_gate(record.name, value)


def check_gate(
    db: Database, record: SourceRecord, embedding: EmbeddingSettings, shards: int
) -> GateResult | None:
    """Score the source when its gate is set and every live chunk has a vector (a run of a
    fan-out that others are still filling is not judged: the run that completes it is)."""
    gate = gate_of(record)
    if gate is None:
        return None
    with db.connect() as conn:
        found = model_table(conn, embedding.model)
        if found is None:
            return GateResult(
                record.name, False, f"no vectors yet for {embedding.model}", gate=gate
            )
        missing, _ = chunks_without_vector(conn, found[0], {record.name: list(range(shards))})
        if missing:
            reason = f"not judged yet: {missing} chunks of {record.name} still without a vector"
            return GateResult(record.name, False, reason, gate=gate)
        try:
            queries = load_queries(gate.queries)
        except EvalFileError as err:
            return GateResult(record.name, False, str(err), gate=gate, missed=[str(err)])
        (score,) = evaluate(
            conn, queries, [gate.mode], table=found[0], embedding=embedding, source=record.name
        )
    return GateResult(
        record.name, True, score=score, missed=failed_thresholds(score, gate.thresholds), gate=gate
    )
