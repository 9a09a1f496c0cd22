"""A source's retrieval gate, as declared in sources.yaml: which evaluation file, which search
mode, which thresholds, and whether missing them fails the run or only warns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVAL_OPTION = "eval"
MODES = ("hybrid", "vector", "text")  # store.search's modes
THRESHOLDS = ("min_recall_at_1", "min_recall_at_5", "min_recall_at_10", "min_mrr_at_10")


@dataclass(frozen=True)
class Gate:
    """A source's evaluation: its queries file, the mode it scores, and the thresholds that
    fail (`severity: error`, the default) or only warn."""

    queries: Path
    mode: str = MODES[0]
    thresholds: dict[str, float] = field(default_factory=dict)
    severity: str = "error"


def parse_gate(source: str, value: Any, base: Path | None = None) -> Gate:
    """The `eval` option of `source` as a Gate (a relative `queries` path is taken from
    `base`, the folder of sources.yaml); ValueError naming the source when malformed."""
    problem = _problem(value)
    if problem:
        raise ValueError(f"source {source!r}: eval: {problem}")
    queries = Path(str(value["queries"])).expanduser()
    if base is not None and not queries.is_absolute():
        queries = (base / queries).resolve()
    thresholds = {k: float(value[k]) for k in THRESHOLDS if k in value}
    return Gate(queries, value.get("mode", MODES[0]), thresholds, value.get("severity", "error"))


def as_option(gate: Gate) -> dict[str, Any]:
    """The gate as the `eval` option stores it (paths absolute)."""
    return {
        "queries": str(gate.queries),
        "mode": gate.mode,
        "severity": gate.severity,
        **gate.thresholds,
    }


def _problem(value: Any) -> str | None:
    if not isinstance(value, dict) or "queries" not in value:
        return "expected a mapping with `queries` (a JSON-lines file) and thresholds"
    unknown = set(value) - {"queries", "mode", "severity", *THRESHOLDS}
    if unknown:
        return f"unknown keys {sorted(unknown)} (thresholds: {', '.join(THRESHOLDS)})"
    if value.get("mode", MODES[0]) not in MODES:
        return f"mode {value['mode']!r} is not one of {', '.join(MODES)}"
    if value.get("severity", "error") not in ("error", "warn"):
        return "severity is error or warn"
    for name in THRESHOLDS:
        if name in value and not isinstance(value[name], int | float):
            return f"{name} must be a number between 0 and 1"
    return None
